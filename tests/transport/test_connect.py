"""connect_timeout, the phase in a timeout's err, and unix_socket (issue
#13), against a port whose accept queue is full (connect() hangs: SYNs
dropped), slow and stalled servers, and a server on a Unix socket."""

from __future__ import annotations

import time

import pytest

import http_async_client as hac
from support.clients import MakeClient
from support.servers import HTTPTestServer
from support.transport_servers import DripServer, FullBacklogListener, UnixHTTPServer

WAIT = 15.0


def test_connect_timeout_bounds_a_hanging_connect(
    full_backlog: FullBacklogListener, make_client: MakeClient
) -> None:
    assert full_backlog.connect_hangs(timeout=0.3)
    client = make_client(connection_timeout=5000, connect_timeout=300)
    start = time.monotonic()
    reply = client.query(full_backlog.url).result(timeout=WAIT)
    took = time.monotonic() - start
    assert reply.timed_out and not reply.ok, reply.err
    assert reply.err is not None and "phase: connect (TCP)" in reply.err
    assert 0.25 <= took < 2.5, took
    assert client.stats()["timeouts"] == 1
    # per query, tighter than the client's
    start = time.monotonic()
    reply = client.query(full_backlog.url, connect_timeout=100).result(timeout=WAIT)
    assert reply.timed_out and time.monotonic() - start < 1.5


def test_without_connect_timeout_the_deadline_bounds_connecting(
    full_backlog: FullBacklogListener, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=700)
    start = time.monotonic()
    reply = client.query(full_backlog.url).result(timeout=WAIT)
    took = time.monotonic() - start
    assert reply.timed_out and "phase: connect (TCP)" in (reply.err or "")
    assert 0.6 <= took < 3.0, took


def test_connect_timeout_does_not_cut_a_slow_connected_server(
    http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=5000, connect_timeout=200)
    reply = client.query(http_server.url + "/delay/800").result(timeout=WAIT)
    assert reply.ok, reply.err
    assert reply.body == b"delayed 800"


def test_connect_timeout_never_extends_the_deadline(
    full_backlog: FullBacklogListener, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=400, connect_timeout=5000)
    start = time.monotonic()
    assert client.query(full_backlog.url).result(timeout=WAIT).timed_out
    assert time.monotonic() - start < 2.5


def test_phase_of_a_response_that_never_comes(http_server: HTTPTestServer, make_client: MakeClient) -> None:
    client = make_client(connection_timeout=300)
    reply = client.query(http_server.url + "/delay/2000").result(timeout=WAIT)
    assert reply.timed_out and "phase: waiting for the response" in (reply.err or ""), reply.err


def test_phase_of_a_stalled_body(stall_server: DripServer, make_client: MakeClient) -> None:
    client = make_client(connection_timeout=500)
    reply = client.query(stall_server.url).result(timeout=WAIT)
    assert reply.timed_out and "phase: receiving the response" in (reply.err or ""), reply.err


def test_low_speed_on_the_drip_server(drip_server: DripServer, make_client: MakeClient) -> None:
    client = make_client(connection_timeout=20000)
    start = time.monotonic()
    reply = client.query(drip_server.url, low_speed_limit=5, low_speed_time=2).result(timeout=WAIT)
    assert reply.timed_out and "low_speed_limit" in (reply.err or ""), reply.err
    assert time.monotonic() - start < 6


# --------------------------------------------------------------- unix_socket


def test_unix_socket_client_and_query(unix_http_server: UnixHTTPServer, make_client: MakeClient) -> None:
    client = make_client(connection_timeout=8000, unix_socket=unix_http_server.path)
    assert client.unix_socket == unix_http_server.path
    for i in range(3):
        reply = client.query(f"http://svc.local/items/{i}").result(timeout=WAIT)
        assert reply.ok, reply.err
        assert reply.body == f"unix:GET /items/{i}".encode()
    assert unix_http_server.requests[0]["host"] == "svc.local"
    other = make_client(connection_timeout=8000)
    reply = other.query("http://localhost/q", unix_socket=unix_http_server.path, post_data=b"x")
    assert reply.result(timeout=WAIT).body == b"unix:POST /q"
    # a socket that is not there: a failed reply, not an exception
    missing = other.query("http://localhost/", unix_socket=unix_http_server.path + ".gone")
    r = missing.result(timeout=WAIT)
    assert not r.ok and r.err


def test_unix_socket_per_query_off(
    unix_http_server: UnixHTTPServer, http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    client = make_client(connection_timeout=8000, unix_socket=unix_http_server.path)
    reply = client.query(http_server.url + "/echo", unix_socket="").result(timeout=WAIT)
    assert reply.ok and reply.body.startswith(b"{")  # the TCP server's JSON echo


@pytest.mark.parametrize("value", [0, -1, "x"])
def test_connect_timeout_bad_values(value: object) -> None:
    with pytest.raises(hac.InvalidOption, match="connect_timeout"):
        hac.Client(connect_timeout=value)

"""Timings (5.x): ``Reply.times``/``time()`` in microseconds, an ordered
chain (lookup <= connect <= pretransfer <= starttransfer <= total),
appconnect only over TLS, zeros on failure; reply ids."""

from __future__ import annotations

import pytest

import http_async_client as hac
from support.certs import Certs
from support.clients import Fetch
from support.ports import free_port
from support.servers import HTTPTestServer

WAIT = 10.0  # bound of every single wait for a reply, s
TIME_KEYS = ("total", "lookup", "connect", "appconnect", "pretransfer", "starttransfer", "redirect")


def _assert_chain(t: dict[str, int], tls: bool) -> None:
    assert set(t) == set(TIME_KEYS)
    assert t["total"] > 0
    assert t["lookup"] <= t["connect"] <= t["pretransfer"] <= t["starttransfer"] <= t["total"]
    if tls:
        assert t["connect"] < t["appconnect"] <= t["pretransfer"]
    else:
        assert t["appconnect"] == 0


def test_times_http(fresh_http_server: HTTPTestServer, fetch: Fetch) -> None:
    """Success over http: an ordered chain of µs, appconnect 0."""
    reply = fetch(f"{fresh_http_server.url}/delay/50")
    assert reply.ok, reply.err
    t = reply.times
    _assert_chain(t, tls=False)
    assert t["starttransfer"] >= 40_000  # the server waited 50 ms: µs, not ms
    assert t["total"] < 5_000_000
    assert t["redirect"] == 0
    for key in TIME_KEYS:
        assert reply.time(key) == t[key]


def test_times_https(https_server: HTTPTestServer, certs: Certs, fetch: Fetch) -> None:
    """Success over https: appconnect sits between connect and pretransfer."""
    reply = fetch(f"{https_server.url}/echo", tls_ca_path=certs.capath)
    assert reply.ok, reply.err
    _assert_chain(reply.times, tls=True)


def test_times_zero_on_failure(fetch: Fetch) -> None:
    """A refused connection: every time is 0."""
    reply = fetch(f"http://127.0.0.1:{free_port()}/")
    assert not reply.ok
    assert reply.times == {k: 0 for k in TIME_KEYS}
    assert all(reply.time(k) == 0 for k in TIME_KEYS)


def test_time_unknown_key(http_server: HTTPTestServer, fetch: Fetch) -> None:
    """time() refuses unknown keys with KeyError."""
    reply = fetch(f"{http_server.url}/echo")
    with pytest.raises(KeyError):
        reply.time("bogus")


def test_reply_id_matches_handle(client: hac.Client, http_server: HTTPTestServer) -> None:
    """Reply.id is the query's id, unique per client."""
    handles = [client.query(f"{http_server.url}/echo") for _ in range(5)]
    replies = [h.result(timeout=WAIT) for h in handles]
    assert [r.id for r in replies] == [h.id for h in handles]
    assert len({r.id for r in replies}) == 5

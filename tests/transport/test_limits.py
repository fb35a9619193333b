"""max_connections: libcurl gets at most that many transfers per worker;
the rest wait in the worker's queue with their deadline running."""

from __future__ import annotations

import http_async_client as hac
from support.clients import MakeClient


def test_excess_requests_wait_for_a_slot(fresh_http_server) -> None:
    with hac.Client(max_connections=2, connection_timeout=5000) as client:
        assert client.max_connections == 2 and client.params["max_connections"] == 2
        handles = [client.query(f"{fresh_http_server.url}/delay/100") for _ in range(10)]
        replies = [h.result(timeout=10) for h in handles]
    assert all(r.ok and r.status == 200 for r in replies), [r.err for r in replies]
    assert fresh_http_server.connections <= 2


def test_deadline_runs_while_waiting(fresh_http_server) -> None:
    """A request that cannot get a slot before its deadline times out with
    a message saying so, counted in timeouts."""
    with hac.Client(max_connections=1, connection_timeout=5000) as client:
        slow = client.query(f"{fresh_http_server.url}/delay/1000")
        starved = client.query(f"{fresh_http_server.url}/echo", timeout=300)
        r = starved.result(timeout=5)
        assert not r.ok and r.timed_out
        assert "waiting for a connection slot" in r.err
        assert slow.result(timeout=5).ok
        stats = client.stats()
    assert stats["timeouts"] == 1 and stats["errors"] == 0


def test_cancel_and_close_reach_waiting_requests(fresh_http_server, make_client: MakeClient) -> None:
    client = make_client(max_connections=1, connection_timeout=5000)
    first = client.query(f"{fresh_http_server.url}/delay/500")
    queued = [client.query(f"{fresh_http_server.url}/echo") for _ in range(5)]
    assert queued[0].cancel()
    assert queued[0].result(timeout=5).cancelled
    client.close()
    assert all(h.result(timeout=0).cancelled for h in queued[1:])
    assert first.result(timeout=0).cancelled
    assert client.stats()["cancelled"] == 6


def test_max_connections_validated() -> None:
    import pytest

    with pytest.raises(hac.InvalidOption):
        hac.Client(max_connections=0)

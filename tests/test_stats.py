"""§5: the seed's counters and the operator's gauges."""

from __future__ import annotations

import time

import http_async_client as hac
from support.servers import HTTPTestServer

REFUSED_URL = "http://127.0.0.1:9/"


def test_counters(http_server: HTTPTestServer) -> None:
    """3 ok + 2 refused + 1 timeout: requests 6, replies 3, errors 2, timeouts 1."""
    with hac.Client(connection_timeout=5000) as client:
        fresh = client.stats()
        for key in ("requests", "replies", "errors", "timeouts", "inflight", "completed_pending"):
            assert fresh[key] == 0, key
        handles = [
            client.query(f"{http_server.url}/echo"),
            client.query(f"{http_server.url}/status/404"),
            client.query(f"{http_server.url}/bytes/10"),
            client.query(REFUSED_URL),
            client.query(REFUSED_URL),
            client.query(f"{http_server.url}/delay/1000", timeout=100),
        ]
        replies = [h.result(timeout=5) for h in handles]
        assert [r.ok for r in replies] == [True, True, True, False, False, False]
        assert replies[-1].timed_out
        stats = client.stats()
    assert stats["requests"] == 6
    assert stats["replies"] == 3
    assert stats["errors"] == 2  # the timeout is counted apart
    assert stats["timeouts"] == 1
    assert stats["cancelled"] == 0
    assert stats["inflight"] == 0
    assert stats["completed_pending"] == 0


def test_inflight_and_completed_pending(http_server: HTTPTestServer) -> None:
    """inflight counts running requests; completed_pending the undrained ones."""
    with hac.Client(connection_timeout=5000) as client:
        handles = [client.query(f"{http_server.url}/delay/300?i={i}") for i in range(5)]
        time.sleep(0.1)
        busy = client.stats()
        assert busy["inflight"] == 5
        assert busy["replies"] == 0
        # let the replies finish without anyone draining them
        deadline = time.monotonic() + 5
        while client.stats()["replies"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        waiting = client.stats()
        assert waiting["replies"] == 5
        assert waiting["inflight"] == 0
        assert waiting["completed_pending"] == 5
        replies = list(client.completions(timeout=5))
        assert sorted(r.id for r in replies) == sorted(h.id for h in handles)
        drained = client.stats()
    assert drained["completed_pending"] == 0
    assert drained["inflight"] == 0
    assert drained["requests"] == drained["replies"] == 5


def test_stats_summed_over_workers(http_server: HTTPTestServer) -> None:
    """With several workers the counters are summed."""
    with hac.Client(workers=3, connection_timeout=5000) as client:
        handles = [client.query(f"{http_server.url}/echo?i={i}") for i in range(9)]
        handles += [client.query(REFUSED_URL) for _ in range(3)]
        assert all(h.result(timeout=5) for h in handles)
        stats = client.stats()
    assert stats["requests"] == 12
    assert stats["replies"] == 9
    assert stats["errors"] == 3
    assert stats["inflight"] == 0 and stats["completed_pending"] == 0

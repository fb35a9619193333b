"""§5: the seed's counters and the operator's gauges."""

from __future__ import annotations

import time
from collections import Counter

import http_async_client as hac
from support.ports import free_port
from support.servers import HTTPTestServer

REFUSED_URL = "http://127.0.0.1:9/"
WAIT = 10.0  # bound of every single wait for a reply in the accounting tests, s


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


# --------------- accounting: every submitted request, each outcome once


def check_accounting(stats: dict[str, int], submitted: int) -> None:
    """Every submitted request counted once, and each finished one in
    exactly one outcome."""
    assert stats["requests"] == submitted, stats
    assert (stats["inflight"], stats["queued"]) == (0, 0), stats
    outcomes = stats["replies"] + stats["errors"] + stats["timeouts"] + stats["cancelled"]
    assert outcomes == stats["requests"], stats
    if "started" in stats:  # requests handed to libcurl, restarts once
        assert 0 < stats["started"] <= stats["requests"], stats


def test_stats_requests_counts_admission_queue_timeouts(fresh_http_server: HTTPTestServer) -> None:
    """50 requests, 2 connection slots, a deadline shorter than the server's
    answer: most miss it in the admission queue, and all 50 are counted."""
    n = 50
    with hac.Client(workers=1, max_connections=2, connection_timeout=5000) as client:
        handles = [client.query(f"{fresh_http_server.url}/delay/1000", timeout=300) for _ in range(n)]
        replies = [h.result(timeout=WAIT) for h in handles]
        stats = client.stats()
    assert all(r.timed_out for r in replies), Counter(r.err for r in replies)
    print(f"\nadmission queue: requests={stats['requests']} of {n}, timeouts={stats['timeouts']}")
    assert stats["timeouts"] == n
    check_accounting(stats, n)


def test_stats_accounting_mixed_outcomes(fresh_http_server: HTTPTestServer) -> None:
    """ok, failed, timed-out (in libcurl and in the queue) and cancelled
    requests: requests == replies + errors + timeouts + cancelled."""
    refused = f"http://127.0.0.1:{free_port()}/"
    url = fresh_http_server.url
    with hac.Client(workers=1, max_connections=2, connection_timeout=5000) as client:
        handles = [client.query(f"{url}/delay/800", timeout=200) for _ in range(6)]
        handles += [client.query(f"{url}/echo") for _ in range(5)]
        handles += [client.query(refused) for _ in range(3)]
        doomed = [client.query(f"{url}/delay/800") for _ in range(4)]
        for h in doomed:
            h.cancel()
        replies = [h.result(timeout=WAIT) for h in handles + doomed]
        stats = client.stats()
    kinds = Counter(
        "cancelled" if r.cancelled else "timeout" if r.timed_out else "ok" if r.ok else "error"
        for r in replies
    )
    assert kinds["ok"] >= 5 and kinds["cancelled"] >= 1, kinds
    assert stats["cancelled"] == kinds["cancelled"], (stats, kinds)
    assert stats["timeouts"] == kinds["timeout"], (stats, kinds)
    check_accounting(stats, len(replies))

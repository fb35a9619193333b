"""Hedged requests: the first complete reply wins, the other transfer is
cancelled at once, a client-wide budget (issue #15)."""

from __future__ import annotations

import time

import pytest

import http_async_client as hac
from support.scripted import Answer, ScriptedServer, Seen


def slow(delay: float):  # type: ignore[no-untyped-def]
    return lambda seen, i: Answer(delay=delay, body=b"slow")


def test_hedge_to_the_next_destination_wins(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(slow(0.2))
    f = ScriptedServer(lambda seen, i: Answer(body=b"fast"))
    servers += [s, f]
    with hac.Client(connection_timeout=5000, hedge_budget=1.0) as c:
        c.destinations("pair", [s.url, f.url], algorithm="failover")
        c.query("dest://pair/warm", hedge_after=None).result()  # connections up
        f.seen.clear()
        t0 = time.monotonic()
        r = c.query("dest://pair/x", hedge_after=20).result()
        took = time.monotonic() - t0
        assert r.ok and r.body == b"fast" and r.hedged, (r.err, r.body)
        assert took < 0.06 + 0.1, took  # 20 ms + a fast reply (slack for load)
        assert r.attempts == 2
        deadline = time.monotonic() + 2
        while s.closed_by_peer < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.closed_by_peer == 1  # the slow transfer was cancelled at once
        st = c.stats()
        assert st["hedges"] == 1 and st["hedge_wins"] == 1
        assert st["replies"] == 2 and st["inflight"] == 0 and st["cancelled"] == 0


def test_hedge_on_the_same_origin(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(lambda seen, i: Answer(delay=0.5 if i == 0 else 0, body=b"%d" % i))
    servers.append(s)
    with hac.Client(connection_timeout=5000, hedge_after=30, hedge_budget=1.0) as c:
        t0 = time.monotonic()
        r = c.query(s.url + "/same").result()
        assert r.ok and r.hedged and r.body == b"1"
        assert time.monotonic() - t0 < 0.3
        assert s.count() == 2


def test_first_copy_can_still_win(servers: list[ScriptedServer]) -> None:
    a = ScriptedServer(lambda seen, i: Answer(delay=0.06, body=b"first"))
    b = ScriptedServer(lambda seen, i: Answer(delay=0.5, body=b"hedge"))
    servers += [a, b]
    with hac.Client(connection_timeout=5000, hedge_budget=1.0) as c:
        c.destinations("fw", [a.url, b.url], algorithm="failover")
        r = c.query("dest://fw/", hedge_after=20).result()
        assert r.ok and r.body == b"first" and not r.hedged and r.attempts == 2
        assert c.stats()["hedges"] == 1 and c.stats()["hedge_wins"] == 0
        deadline = time.monotonic() + 2
        while b.closed_by_peer < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.closed_by_peer == 1


def test_no_hedge_for_post_or_fast_replies(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(slow(0.1))
    servers.append(s)
    with hac.Client(connection_timeout=5000, hedge_after=10, hedge_budget=1.0) as c:
        r = c.query(s.url + "/p", post_data=b"x").result()
        assert r.ok and not r.hedged and r.attempts == 1 and s.count() == 1
        s.script = lambda seen, i: Answer()
        r = c.query(s.url + "/g").result()
        assert r.ok and not r.hedged and c.stats()["hedges"] == 0


def test_budget_caps_hedges(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(slow(0.03))
    servers.append(s)
    with hac.Client(connection_timeout=8000, hedge_after=5, hedge_budget=0.1) as c:
        total = 0
        for _ in range(10):
            hs = [c.query(s.url + "/b") for _ in range(100)]
            rs = [h.result() for h in hs]
            assert all(r.ok for r in rs)
            total += len(rs)
        st = c.stats()
        assert total == 1000
        assert 50 <= st["hedges"] <= 100 + 1, st["hedges"]
        # a hedge whose first copy won while it was being sent never arrives
        assert 1000 + st["hedges"] // 2 <= s.count() <= 1000 + st["hedges"]


def test_cancel_and_close_stop_both_copies(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(slow(1.0))
    servers.append(s)
    with hac.Client(connection_timeout=5000, hedge_after=20, hedge_budget=1.0) as c:
        h = c.query(s.url + "/c")
        time.sleep(0.15)
        assert s.count() == 2
        h.cancel()
        r = h.result()
        assert r.cancelled and c.stats()["inflight"] == 0
        hs = [c.query(s.url + "/d") for _ in range(5)]
        time.sleep(0.15)
    assert all(x.result().cancelled for x in hs)


def test_hedge_after_p95_uses_the_origins_histogram(servers: list[ScriptedServer]) -> None:
    # every 20th request is slow: the p95 of time to first byte is fast,
    # so the slow ones get a hedge that answers at once
    s = ScriptedServer(lambda seen, i: Answer(delay=0.4 if i % 20 == 19 else 0.0))
    servers.append(s)
    with hac.Client(connection_timeout=5000, hedge_budget=0.2) as c:
        r = c.query(s.url + "/", hedge_after="p95").result()
        assert r.ok and c.stats()["hedges"] == 0  # no percentile known yet: no hedge
        for _ in range(59):
            assert c.query(s.url + "/").result().ok
        assert c.latency(s.url)["count"] == 60
        took = []
        for _ in range(100):
            t0 = time.monotonic()
            r = c.query(s.url + "/", hedge_after="p95").result()
            took.append(time.monotonic() - t0)
            assert r.ok
        st = c.stats()
        assert st["hedges"] >= 3 and st["hedge_wins"] >= 3, st
        assert sorted(took)[-1] < 0.35, sorted(took)[-5:]

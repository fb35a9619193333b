"""Per-origin rate limits and max_queue_wait load shedding (issue #15)."""

from __future__ import annotations

import time

import pytest

import http_async_client as hac
from support.scripted import Answer, ScriptedServer


def test_rate_limit_lets_the_rate_through(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer()
    servers.append(s)
    with hac.Client(rate_limit={s.url: 200}, connection_timeout=2000, workers=2) as c:
        t0 = time.monotonic()
        hs = [c.query(s.url + f"/r{i}") for i in range(1000)]
        rs = [h.result() for h in hs]
        took = time.monotonic() - t0
        arrived = [x.at - t0 for x in s.seen]
        assert abs(len(arrived) - 400) <= 20, len(arrived)
        assert max(arrived) < 2.1
        late = [r for r in rs if not r.ok]
        # the ones whose slot came too late wait out their deadline; a few
        # sent in its last milliseconds miss it on the wire
        assert all(r.timed_out for r in late), [r.err for r in late if not r.timed_out][:2]
        assert sum("rate_limit" in (r.err or "") for r in late) >= len(late) - 20
        assert sum(r.ok for r in rs) >= 380
        assert took < 3.0
        assert c.stats()["rate_delayed"] >= 390


def test_other_origins_are_not_limited(servers: list[ScriptedServer]) -> None:
    a, b = ScriptedServer(), ScriptedServer()
    servers += [a, b]
    with hac.Client(rate_limit={a.url.replace("127.0.0.1", "127.0.0.1") + "/": 5},
                    connection_timeout=3000) as c:
        t0 = time.monotonic()
        assert all(c.query(b.url + "/").result().ok for _ in range(50))
        assert time.monotonic() - t0 < 1.5
        assert c.stats()["rate_delayed"] == 0


def test_max_queue_wait_sheds_the_rate_excess(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer()
    servers.append(s)
    with hac.Client(rate_limit={s.url: 10}, max_queue_wait=150, connection_timeout=5000) as c:
        t0 = time.monotonic()
        hs = [c.query(s.url + "/") for _ in range(20)]
        shed = []
        for h in reversed(hs):  # the shed ones first: the 2nd waits 100 ms
            r = h.result()
            if not r.ok:
                shed.append((time.monotonic() - t0, r))
        assert len(shed) == 18 and s.count() == 2
        assert all(t < 0.1 for t, _ in shed), [t for t, _ in shed]
        assert all("RATE_LIMITED" in (r.err or "") and not r.timed_out for _, r in shed)
        assert c.stats()["shed"] == 18 and c.stats()["errors"] == 18


def test_max_queue_wait_sheds_when_no_connection_slot(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(lambda seen, i: Answer(delay=0.5))
    servers.append(s)
    with hac.Client(max_connections=2, connection_timeout=5000) as c:
        t0 = time.monotonic()
        hs = [c.query(s.url + "/", max_queue_wait=100) for _ in range(10)]
        rs = [h.result() for h in hs]
        assert sum(r.ok for r in rs) == 2
        shed = [r for r in rs if not r.ok]
        assert all("QUEUE_WAIT" in (r.err or "") for r in shed), shed[0].err
        assert time.monotonic() - t0 < 1.5
        assert c.stats()["shed"] == 8
        # without it they wait their turn and all succeed
        rs = [h.result() for h in [c.query(s.url + "/") for _ in range(4)]]
        assert all(r.ok for r in rs)

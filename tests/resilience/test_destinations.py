"""Destination sets: dest://NAME/path, the algorithms, passive health,
probing, all-down, retries moving on (issue #15)."""

from __future__ import annotations

import collections
import time

import pytest

import http_async_client as hac
from support.ports import free_port
from support.scripted import Answer, ScriptedServer, Seen


def make(servers: list[ScriptedServer], n: int) -> list[ScriptedServer]:
    for _ in range(n):
        servers.append(ScriptedServer())
    return servers[-n:]


def run(c: hac.Client, url: str, n: int, at_once: int = 50) -> list[hac.Reply]:
    out: list[hac.Reply] = []
    for i in range(0, n, at_once):
        hs = [c.query(f"{url}?i={j}") for j in range(i, min(n, i + at_once))]
        out.extend(h.result() for h in hs)
    return out


def test_round_robin_spreads_evenly(servers: list[ScriptedServer]) -> None:
    ss = make(servers, 3)
    with hac.Client(connection_timeout=8000, workers=2) as c:
        c.destinations("rr", [s.url for s in ss])
        rs = run(c, "dest://rr/v1/x", 1000)
        assert all(r.ok and r.status == 200 for r in rs)
        counts = [s.count() for s in ss]
        assert sum(counts) == 1000
        for n in counts:
            assert abs(n - 1000 / 3) <= 0.05 * 1000 / 3, counts
        assert all(x.path.startswith("/v1/x?i=") for s in ss for x in s.seen)
        state = c.destination_state("rr")
        assert [d["url"] for d in state] == [s.url for s in ss]
        assert [d["requests"] for d in state] == counts
        assert all(d["state"] == "up" and d["inflight"] == 0 for d in state)
        assert all(d["latency_us"] > 0 for d in state)
        assert c.stats()["destinations"]["rr"] == c.destination_state("rr")


def test_weights_three_to_one(servers: list[ScriptedServer]) -> None:
    a, b = make(servers, 2)
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("w", [a.url, b.url], algorithm="weighted", weights=[3, 1])
        rs = run(c, "dest://w/", 1000)
        assert all(r.ok for r in rs)
        assert abs(a.count() - 750) <= 50 and abs(b.count() - 250) <= 50, (a.count(), b.count())


def test_failover_uses_the_first_up(servers: list[ScriptedServer]) -> None:
    a, b = make(servers, 2)
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("f", [a.url, b.url], algorithm="failover", max_failures=2, down_for=30)
        assert all(r.ok for r in run(c, "dest://f/x", 100))
        assert (a.count(), b.count()) == (100, 0)
        a.stop()
        rs = [c.query("dest://f/x").result() for _ in range(20)]
        assert [r.ok for r in rs[:2]] == [False, False]  # the two that mark it down
        assert all(r.ok for r in rs[2:]) and b.count() == 18
        assert c.destination_state("f")[0]["state"] == "down"


def test_hash_keeps_a_path_on_one_destination(servers: list[ScriptedServer]) -> None:
    ss = make(servers, 3)
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("h", [s.url for s in ss], algorithm="hash")
        for k in range(30):
            for _ in range(3):
                assert c.query(f"dest://h/user/{k}").result().ok
        where = collections.defaultdict(set)
        for i, s in enumerate(ss):
            for x in s.seen:
                where[x.path].add(i)
        assert len(where) == 30 and all(len(v) == 1 for v in where.values())
        assert all(s.count() > 0 for s in ss)  # 30 keys reach all three


def test_path_prefix_and_query(servers: list[ScriptedServer]) -> None:
    (a,) = make(servers, 1)
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("p", [a.url + "/api/"])
        assert c.query("dest://p/v1/charge?x=1").result().ok
        assert c.query("dest://p").result().ok
        assert c.query("dest://p?q=2").result().ok
        assert [x.path for x in a.seen] == ["/api/v1/charge?x=1", "/api/", "/api/?q=2"]


def test_killed_destination_marked_down_and_probed_back(servers: list[ScriptedServer]) -> None:
    ss = make(servers, 3)
    victim = ss[1]
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("k", [s.url for s in ss], max_failures=3, down_for=0.5)
        assert all(r.ok for r in run(c, "dest://k/a", 300, at_once=10))
        victim.stop()
        rs = run(c, "dest://k/a", 600, at_once=10)
        failed = [r for r in rs if not r.ok]
        st = c.destination_state("k")[1]
        assert st["state"] in ("down", "probing")
        # only the requests that hit it before it was marked failed: the
        # three that marked it, plus at most those already in flight, plus
        # one probe per down_for that passed
        assert 3 <= len(failed) <= 3 + 10 + 4, len(failed)
        assert st["failures"] == len(failed)
        # refused, or reset / closed under the requests in flight at the kill
        assert all(r.err and not r.timed_out for r in failed), [r.err for r in failed]
        victim.start()  # same port
        time.sleep(0.6)
        before = victim.count()
        rs = run(c, "dest://k/a", 300, at_once=10)
        assert all(r.ok for r in rs), [r.err for r in rs if not r.ok][:2]
        assert c.destination_state("k")[1]["state"] == "up"
        assert victim.count() - before >= 80  # back in the rotation


def test_all_down_fails_at_once(servers: list[ScriptedServer]) -> None:
    ports = [free_port(), free_port()]
    with hac.Client(connection_timeout=3000) as c:
        c.destinations("dead", [f"http://127.0.0.1:{p}" for p in ports],
                       max_failures=1, down_for=30)
        assert not c.query("dest://dead/").result().ok
        assert not c.query("dest://dead/").result().ok
        t0 = time.monotonic()
        r = c.query("dest://dead/").result()
        assert time.monotonic() - t0 < 0.1
        assert not r.ok and not r.timed_out and r.attempts == 0
        assert "DESTINATIONS_DOWN" in (r.err or "") and "'dead'" in (r.err or ""), r.err
        assert [d["state"] for d in c.destination_state("dead")] == ["down", "down"]
        assert all(d["down_left_s"] > 20 for d in c.destination_state("dead"))
        assert c.stats()["errors"] == 3


def test_retries_move_to_the_next_destination(servers: list[ScriptedServer]) -> None:
    (good,) = make(servers, 1)
    dead = f"http://127.0.0.1:{free_port()}"
    with hac.Client(connection_timeout=8000, retries=1, retry_backoff=1) as c:
        c.destinations("m", [dead, good.url], max_failures=1000)
        rs = run(c, "dest://m/r", 100, at_once=10)
        assert all(r.ok for r in rs), [r.err for r in rs if not r.ok][:2]
        assert good.count() == 100
        assert sum(r.attempts == 2 for r in rs) == c.destination_state("m")[0]["failures"] > 0


def test_redefining_a_set_replaces_it(servers: list[ScriptedServer]) -> None:
    a, b = make(servers, 2)
    with hac.Client(connection_timeout=8000) as c:
        c.destinations("r", [a.url])
        hs = [c.query("dest://r/") for _ in range(20)]
        c.destinations("r", [b.url])
        assert all(h.result().ok for h in hs)
        assert c.query("dest://r/").result().ok
        assert b.count() >= 1 and a.count() + b.count() == 21
        assert [d["url"] for d in c.destination_state("r")] == [b.url]


def test_bad_definitions_and_unknown_sets() -> None:
    with hac.Client() as c:
        with pytest.raises(hac.InvalidURL):
            c.query("dest://never-defined-anywhere/x")
        for args, kw in [
            (("bad name", ["http://127.0.0.1:1"]), {}),
            (("s", []), {}),
            (("s", "http://127.0.0.1:1"), {}),
            (("s", ["ftp://127.0.0.1:1"]), {}),
            (("s", ["dest://s/"]), {}),
            (("s", ["http://127.0.0.1:1?q"]), {}),
            (("s", ["http://127.0.0.1:1"]), {"algorithm": "random"}),
            (("s", ["http://127.0.0.1:1"]), {"weights": [1, 2]}),
            (("s", ["http://127.0.0.1:1"]), {"weights": [0]}),
            (("s", ["http://127.0.0.1:1"]), {"max_failures": 0}),
            (("s", ["http://127.0.0.1:1"]), {"down_for": -1}),
            (("s", ["http://127.0.0.1:1"]), {"probe_path": "health"}),
        ]:
            with pytest.raises(hac.UsageError):
                c.destinations(*args, **kw)  # type: ignore[arg-type]
        with pytest.raises(hac.InvalidOption):
            c.destination_state("nope")
        assert c.stats()["requests"] == 0
    with hac.Client() as c1, hac.Client() as c2:
        c1.destinations("only-c1", ["http://127.0.0.1:9"])
        r = c2.query("dest://only-c1/").result()  # known to the process, not to c2
        assert not r.ok and "no destination set named 'only-c1'" in (r.err or "")

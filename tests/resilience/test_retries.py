"""retries=: every attempt inside the one deadline, the method rules,
retry_statuses with Retry-After, and the counters (issue #15)."""

from __future__ import annotations

import time

import pytest

import http_async_client as hac
from support.ports import free_port
from support.scripted import Answer, ScriptedServer, Seen


def reset_first(n: int):  # type: ignore[no-untyped-def]
    def script(seen: Seen, index: int) -> Answer:
        return Answer(reset=True) if seen.conn < n else Answer()
    return script


def test_reset_twice_then_ok(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(reset_first(2))
    servers.append(s)
    with hac.Client(retries=2, retry_backoff=5, connection_timeout=5000) as c:
        r = c.query(s.url + "/a").result()
        assert r.ok and r.status == 200, r.err
        assert r.attempts == 3
        assert s.count("GET") == 3
        st = c.stats()
        assert st["retries"] == 2
        assert st["replies"] == 1 and st["errors"] == 0 and st["requests"] == 1


def test_one_retry_is_not_enough(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(reset_first(2))
    servers.append(s)
    with hac.Client(connection_timeout=5000) as c:
        r = c.query(s.url + "/a", retries=1, retry_backoff=5).result()
        assert not r.ok and not r.timed_out
        assert r.attempts == 2
        assert "reset" in (r.err or "").lower() or "recv" in (r.err or "").lower(), r.err
        assert c.stats()["errors"] == 1 and c.stats()["retries"] == 1


def test_no_retries_by_default(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(reset_first(1))
    servers.append(s)
    with hac.Client(connection_timeout=5000) as c:
        r = c.query(s.url + "/a").result()
        assert not r.ok and r.attempts == 1 and s.count() == 1


def test_post_not_retried_after_it_was_sent(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(reset_first(2))
    servers.append(s)
    with hac.Client(retries=3, retry_backoff=5, connection_timeout=5000) as c:
        r = c.query(s.url + "/charge", post_data=b"x" * 100).result()
        assert not r.ok and r.attempts == 1
        assert s.count("POST") == 1  # it reached the server once: never again
        r = c.query(s.url + "/charge", post_data=b"y", retry_unsafe=True).result()
        assert r.ok and r.status == 200, r.err
        assert r.attempts == 2 and s.count("POST") == 3


def test_post_retried_when_it_never_went_out() -> None:
    port = free_port()  # nobody listens: refused before anything is sent
    with hac.Client(retries=2, retry_backoff=5, connection_timeout=5000) as c:
        r = c.query(f"http://127.0.0.1:{port}/", post_data=b"x").result()
        assert not r.ok and r.attempts == 3
        assert "connect" in (r.err or "").lower(), r.err


def test_refused_then_up(servers: list[ScriptedServer]) -> None:
    port = free_port()
    with hac.Client(retries=50, retry_backoff=20, connection_timeout=8000) as c:
        h = c.query(f"http://127.0.0.1:{port}/late")
        time.sleep(0.3)
        s = ScriptedServer(port=port)
        servers.append(s)
        r = h.result()
        assert r.ok and r.status == 200 and r.attempts > 1, r.err


def _status_then_ok(code: int, after: str):  # type: ignore[no-untyped-def]
    def script(seen: Seen, index: int) -> Answer:
        if index == 0:
            return Answer(status=code, headers=(("Retry-After", after),), body=b"busy")
        return Answer()
    return script


def test_503_retried_only_when_listed(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(_status_then_ok(503, "0"))
    servers.append(s)
    with hac.Client(retries=2, retry_backoff=5, connection_timeout=5000) as c:
        r = c.query(s.url + "/x").result()
        assert r.ok and r.status == 503 and r.attempts == 1 and r.body == b"busy"
        s.seen.clear()
        s.script = _status_then_ok(503, "0")
        r = c.query(s.url + "/x", retry_statuses={503}).result()
        assert r.status == 200 and r.attempts == 2 and r.body == b"ok"
    with hac.Client(retries=2, retry_statuses=[502, 503], connection_timeout=5000) as c:
        s.seen.clear()
        r = c.query(s.url + "/x").result()
        assert r.status == 200 and r.attempts == 2
        s.seen.clear()  # a POST is not retried on a status unless retry_unsafe
        r = c.query(s.url + "/x", post_data=b"p").result()
        assert r.status == 503 and r.attempts == 1


def test_retry_after_is_honoured_when_it_fits(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(_status_then_ok(503, "1"))
    servers.append(s)
    with hac.Client(retries=1, retry_statuses={503}, retry_backoff=0,
                    connection_timeout=5000) as c:
        t0 = time.monotonic()
        r = c.query(s.url + "/x").result()
        assert r.status == 200 and r.attempts == 2
        gap = s.seen[1].at - s.seen[0].at
        assert 0.9 <= gap < 3.0, gap
        # too long for the deadline: the 503 stands at once
        s.seen.clear()
        s.script = _status_then_ok(503, "30")
        t0 = time.monotonic()
        r = c.query(s.url + "/x", timeout=2000).result()
        assert r.status == 503 and r.attempts == 1
        assert time.monotonic() - t0 < 1.5


def test_attempts_share_one_deadline(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(lambda seen, i: Answer(reset=True))
    servers.append(s)
    with hac.Client(retries=1000, retry_backoff=10, connection_timeout=300) as c:
        t0 = time.monotonic()
        r = c.query(s.url + "/always").result()
        took = time.monotonic() - t0
        assert r.timed_out and not r.ok, r.err
        assert "TIMEOUT" in (r.err or "") and "attempt" in (r.err or "")
        assert r.attempts > 1
        assert took < 0.6, took
        assert all(x.at - t0 <= 0.3 for x in s.seen), [x.at - t0 for x in s.seen]
        assert len(s.seen) == r.attempts
        assert c.stats()["timeouts"] == 1 and c.stats()["errors"] == 0


def test_backoff_grows_with_jitter(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(reset_first(6))
    servers.append(s)
    with hac.Client(retries=6, retry_backoff=40, connection_timeout=8000) as c:
        r = c.query(s.url + "/b").result()
        assert r.ok and r.attempts == 7
        gaps = [b.at - a.at for a, b in zip(s.seen, s.seen[1:])]
        # full jitter: each gap in [0, min(1 s, 40 ms * 2^n)] (+ scheduling)
        for n, g in enumerate(gaps):
            assert g <= min(1.0, 0.04 * 2 ** n) + 0.25, (n, gaps)
        assert sum(gaps) < 3.0


def test_many_retried_requests_lose_nothing(servers: list[ScriptedServer]) -> None:
    # every third connection resets: 300 GETs, each answered once, ok
    s = ScriptedServer(lambda seen, i: Answer(reset=seen.conn % 3 == 0))
    servers.append(s)
    with hac.Client(retries=5, retry_backoff=2, connection_timeout=8000, workers=2) as c:
        hs = [c.query(f"{s.url}/m{i}") for i in range(300)]
        rs = [h.result() for h in hs]
        assert all(r.ok and r.status == 200 for r in rs), [r.err for r in rs if not r.ok][:3]
        st = c.stats()
        assert st["replies"] == 300 and st["inflight"] == 0
        assert st["retries"] == sum(r.attempts - 1 for r in rs) - st["resent"]


@pytest.mark.parametrize(
    "kw",
    [
        {"retries": -1}, {"retries": 1001}, {"retries": "x"},
        {"retry_statuses": 503}, {"retry_statuses": [99]}, {"retry_statuses": ["503"]},
        {"retry_statuses": "503"}, {"retry_backoff": -5},
        {"hedge_after": 0}, {"hedge_after": "p"}, {"hedge_after": "95"},
        {"hedge_after": "p100x"}, {"max_queue_wait": 0}, {"max_queue_wait": -1},
    ],
)
def test_bad_values_raise(kw: dict[str, object]) -> None:
    with pytest.raises(hac.InvalidOption):
        hac.Client(**kw)  # type: ignore[arg-type]
    with hac.Client() as c:
        with pytest.raises(hac.InvalidOption):
            c.query("http://127.0.0.1:9/", **kw)  # type: ignore[arg-type]
        assert c.stats()["requests"] == 0


@pytest.mark.parametrize(
    "kw",
    [{"hedge_budget": 1.5}, {"hedge_budget": -0.1}, {"hedge_budget": "a"},
     {"rate_limit": {"ftp://x": 5}}, {"rate_limit": {"http://127.0.0.1:80": 0}},
     {"rate_limit": [("http://a", 1)]}, {"rate_limit": {"http://a/path": 3}}],
)
def test_bad_client_values_raise(kw: dict[str, object]) -> None:
    with pytest.raises(hac.InvalidOption):
        hac.Client(**kw)  # type: ignore[arg-type]

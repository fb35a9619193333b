"""§3: queries, routes and suspension, completions(), dispatch(), handles."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

import http_async_client as hac
from support.clients import MakeClient
from support.servers import HTTPTestServer

REFUSED_URL = "http://127.0.0.1:9/"


class Recorder:
    """A route that records every reply it receives, with the thread."""

    def __init__(self) -> None:
        self.replies: list[hac.Reply] = []
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, reply: hac.Reply) -> None:
        with self._lock:
            self.replies.append(reply)
            self.threads.append(threading.get_ident())


def drain(client: hac.Client, expected: int, limit: float = 10.0) -> int:
    """Call dispatch() until ``expected`` routes ran or ``limit`` s passed."""
    done = 0
    deadline = time.monotonic() + limit
    while done < expected and time.monotonic() < deadline:
        done += client.dispatch(timeout=1)
    return done


# ---------------------------------------------------------------- suspended


def test_suspended_query_runs_route_before_returning(http_server: HTTPTestServer) -> None:
    """Suspended (default): 0 is returned only after the route ran."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        rc = client.http_async_query(f"{http_server.url}/delay/100", rec)
        # the route has already run when the call returns
        seen = list(rec.replies)
    assert rc == 0
    assert len(seen) == 1
    reply = seen[0]
    assert reply.ok and reply.status == 200
    assert reply.body == b"delayed 100"
    assert rec.threads == [threading.get_ident()]


def test_suspended_query_with_post_data(http_server: HTTPTestServer) -> None:
    """http_async_query(url, post_data, route) sends a POST with the body."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        rc = client.http_async_query(f"{http_server.url}/echo", "a=1&b=\u00e9", rec)
    assert rc == 0
    assert len(rec.replies) == 1
    data = json.loads(rec.replies[0].body)
    assert data["method"] == "POST"
    assert data["body"].encode("latin-1") == "a=1&b=\u00e9".encode()
    assert data["body_len"] == len("a=1&b=\u00e9".encode())


# ------------------------------------------------------------ not suspended


@pytest.mark.parametrize("how", ["function", "http_req"])
def test_not_suspended_returns_one_and_route_runs_on_dispatch(
    http_server: HTTPTestServer, how: str
) -> None:
    """suspend 0: 1 at once; the route runs on dispatch()."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        if how == "function":
            client.http_async_suspend(0)
        else:
            client.http_req["suspend"] = 0
        t0 = time.monotonic()
        rc = client.http_async_query(f"{http_server.url}/delay/300", rec)
        elapsed = time.monotonic() - t0
        assert rc == 1
        assert elapsed < 0.2
        assert rec.replies == []
        assert client.dispatch(timeout=5) == 1
        assert len(rec.replies) == 1
        assert rec.replies[0].ok and rec.replies[0].body == b"delayed 300"
        # the state was reset: the next query is suspended again
        rc2 = client.http_async_query(f"{http_server.url}/echo", rec)
        assert rc2 == 0 and len(rec.replies) == 2


# ------------------------------------------------------------------- routes


def test_route_by_name_decorator_and_call(http_server: HTTPTestServer) -> None:
    """Routes registered by decorator and by call are found by name."""
    got: dict[str, list[int]] = {"deco": [], "call": [], "callable": []}
    with hac.Client(connection_timeout=5000) as client:

        @client.route("HTTP_REPLY")
        def http_reply(reply: hac.Reply) -> None:
            got["deco"].append(reply.status)

        assert callable(http_reply)
        client.route("N", lambda r: got["call"].append(r.status))

        assert client.http_async_query(f"{http_server.url}/status/201", "HTTP_REPLY") == 0
        assert client.http_async_query(f"{http_server.url}/status/202", "N") == 0
        assert (
            client.http_async_query(
                f"{http_server.url}/status/203", lambda r: got["callable"].append(r.status)
            )
            == 0
        )
        h = client.query(f"{http_server.url}/status/204", route="N")
        h.result(timeout=5)
    assert got == {"deco": [201], "call": [202, 204], "callable": [203]}


def test_unknown_route_name(
    http_server: HTTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown route name: -1 (reason logged) and InvalidOption from query()."""
    with hac.Client() as client:
        with caplog.at_level(logging.ERROR, logger="http_async_client"):
            assert client.http_async_query(f"{http_server.url}/echo", "NOPE") == -1
        assert any("NOPE" in r.getMessage() for r in caplog.records)
        with pytest.raises(hac.InvalidOption):
            client.query(f"{http_server.url}/echo", route="NOPE")
        assert client.stats()["requests"] == 0


def test_route_runs_on_every_outcome(http_server: HTTPTestServer) -> None:
    """The route runs on success, HTTP error status, refusal and timeout."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        assert client.http_async_query(f"{http_server.url}/echo", rec) == 0
        assert client.http_async_query(f"{http_server.url}/status/404", rec) == 0
        assert client.http_async_query(REFUSED_URL, rec) == 0
        client.http_set_timeout(100)
        assert client.http_async_query(f"{http_server.url}/delay/1000", rec) == 0
    ok, notfound, refused, timed_out = rec.replies
    assert ok.ok and ok.status == 200 and ok.err is None
    assert notfound.ok and notfound.status == 404 and notfound.body == b"status 404"
    assert not refused.ok and refused.err and refused.status == 0
    assert not refused.timed_out
    assert not timed_out.ok and timed_out.timed_out
    assert timed_out.err and "TIMEOUT" in timed_out.err


def test_raising_route_is_logged_and_counted(
    http_server: HTTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising route is logged with its traceback and does not stop others."""
    processed: list[int] = []
    bad_index = 3

    def route(reply: hac.Reply) -> None:
        data = json.loads(reply.body)
        index = int(data["path"].rsplit("=", 1)[1])
        if index == bad_index:
            raise RuntimeError("boom in route")
        processed.append(index)

    with hac.Client(connection_timeout=5000) as client:
        with caplog.at_level(logging.ERROR, logger="http_async_client"):
            for i in range(10):
                client.http_async_suspend(0)
                assert client.http_async_query(f"{http_server.url}/echo?i={i}", route) == 1
            assert drain(client, 10) == 10
        stats = client.stats()
    assert sorted(processed) == [i for i in range(10) if i != bad_index]
    assert stats["route_errors"] == 1
    errors = [
        r for r in caplog.records
        if r.name == "http_async_client" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "boom in route" in caplog.text
    assert "Traceback" in caplog.text


# -------------------------------------------------------------- completions


def test_completions_in_completion_order(http_server: HTTPTestServer) -> None:
    """completions() yields replies as they finish, each once, then ends."""
    with hac.Client(connection_timeout=5000) as client:
        handles = [
            client.query(f"{http_server.url}/delay/{ms}") for ms in (600, 300, 10)
        ]
        t0 = time.monotonic()
        replies = list(client.completions(timeout=5))
        elapsed = time.monotonic() - t0
        assert [r.id for r in replies] == [h.id for h in reversed(handles)]
        assert [r.body for r in replies] == [b"delayed 10", b"delayed 300", b"delayed 600"]
        assert len({id(r) for r in replies}) == 3
        assert elapsed < 3
        # nothing in flight: a new iteration ends immediately
        t0 = time.monotonic()
        assert list(client.completions(timeout=5)) == []
        assert time.monotonic() - t0 < 0.5


def test_dispatch_zero_returns_zero_when_nothing_ready(http_server: HTTPTestServer) -> None:
    """dispatch(0) returns 0 at once when no reply is ready."""
    with hac.Client(connection_timeout=5000) as client:
        assert client.dispatch(0) == 0
        h = client.query(f"{http_server.url}/delay/500")
        t0 = time.monotonic()
        assert client.dispatch(0) == 0
        assert time.monotonic() - t0 < 0.2
        assert h.result(timeout=5).ok


def test_result_wait_timeout_then_result(http_server: HTTPTestServer) -> None:
    """result(timeout) raises WaitTimeout (a TimeoutError); the query goes on."""
    with hac.Client(connection_timeout=5000) as client:
        h = client.query(f"{http_server.url}/delay/500")
        t0 = time.monotonic()
        with pytest.raises(hac.WaitTimeout) as info:
            h.result(timeout=0.05)
        assert time.monotonic() - t0 < 0.4
        assert isinstance(info.value, TimeoutError)
        assert not h.done()
        reply = h.result(timeout=5)
        assert reply.ok and reply.body == b"delayed 500"
        assert reply.id == h.id and h.done()


def test_result_claim_is_not_yielded_by_completions(http_server: HTTPTestServer) -> None:
    """A reply taken by handle.result() is not yielded by completions()."""
    with hac.Client(connection_timeout=5000) as client:
        fast = client.query(f"{http_server.url}/echo")
        slow = client.query(f"{http_server.url}/delay/200")
        fast_reply = fast.result(timeout=5)
        assert fast_reply.ok
        ids = [r.id for r in client.completions(timeout=5)]
    assert ids == [slow.id]


def test_completions_claim_still_returned_by_result(http_server: HTTPTestServer) -> None:
    """A reply taken by completions() is the one result() returns; route once."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        h = client.query(f"{http_server.url}/echo", route=rec)
        replies = list(client.completions(timeout=5))
        assert len(replies) == 1 and replies[0].id == h.id
        assert len(rec.replies) == 1
        again = h.result(timeout=5)
        assert again is replies[0]
        assert h.result(timeout=5) is replies[0]
        assert client.dispatch(0) == 0
    assert len(rec.replies) == 1 and rec.replies[0] is again


def test_cancel(http_server: HTTPTestServer) -> None:
    """cancel() gives a cancelled, failed reply quickly; counted in stats."""
    rec = Recorder()
    with hac.Client(connection_timeout=5000) as client:
        h = client.query(f"{http_server.url}/delay/2000", route=rec)
        time.sleep(0.05)
        t0 = time.monotonic()
        assert h.cancel() is True
        reply = h.result(timeout=1)
        assert time.monotonic() - t0 < 1
        assert reply.cancelled and not reply.ok and not reply.timed_out
        assert h.cancel() is False
        stats = client.stats()
    assert stats["cancelled"] == 1
    assert rec.replies == [reply]
    with pytest.raises(hac.Cancelled):
        reply.raise_for_error()


# ------------------------------------------------------------------ threads


def test_many_threads_submitting(http_server: HTTPTestServer) -> None:
    """4 threads x 1000 queries on one client: every reply accounted for.
    (HAC_TEST_SCALE shrinks it for the TSan build, where the in-process
    test server cannot accept 4,000 connections in time.)"""
    per_thread = max(50, int(1000 * float(os.environ.get("HAC_TEST_SCALE", "1"))))
    results: dict[int, list[hac.Reply]] = {}
    errors: list[BaseException] = []

    with hac.Client(workers=2, connection_timeout=20000) as client:

        def run(n: int) -> None:
            try:
                handles = [
                    client.query(f"{http_server.url}/status/200?t={n}&i={i}")
                    for i in range(per_thread)
                ]
                results[n] = [h.result(timeout=25) for h in handles]
                for h, r in zip(handles, results[n]):
                    assert r.id == h.id
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        stats = client.stats()
    assert errors == []
    replies = [r for rs in results.values() for r in rs]
    assert len(replies) == 4 * per_thread
    assert all(r.ok and r.status == 200 for r in replies)
    assert len({r.id for r in replies}) == 4 * per_thread
    for n, rs in results.items():
        assert all(f"?t={n}&" in r.url for r in rs)
    assert stats["requests"] == stats["replies"] == 4 * per_thread
    assert stats["errors"] == 0


# -------------------------------------------------------------------- close


def test_close_with_requests_in_flight(
    fresh_http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    """close() cancels 200 in-flight requests quickly; later queries fail."""
    # replies due long after the 200 requests can have arrived (5 s on a
    # loaded machine), so that close() finds every one in flight
    client = make_client(connection_timeout=20000)
    handles = [
        client.query(f"{fresh_http_server.url}/delay/8000?i={i}") for i in range(200)
    ]
    assert fresh_http_server.requests.wait_for(200, timeout=5)
    t0 = time.monotonic()
    client.close()
    assert time.monotonic() - t0 < 1
    assert client.closed
    for h in handles:
        assert h.done()
        reply = h.result(timeout=1)
        assert reply.cancelled and not reply.ok
        assert reply.id == h.id
    assert client.stats()["cancelled"] == 200
    with pytest.raises(hac.ClientClosed):
        client.query(f"{fresh_http_server.url}/echo")
    assert client.http_async_query(f"{fresh_http_server.url}/echo", lambda r: None) == -1

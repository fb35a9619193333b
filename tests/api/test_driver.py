"""driver="caller": no worker thread; the thread that waits runs the loop.
Every request still gets exactly one reply, deadlines still hold (while
someone waits), close() answers what is in flight, and asyncio is refused."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import http_async_client as hac
from support.servers import HTTPTestServer

WAIT = 10.0


def threads_now() -> int:
    """This process's OS threads that Python did not start (a worker's,
    libcurl's); the test server's threads are Python's."""
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def test_no_thread_and_replies(http_server: HTTPTestServer) -> None:
    before = threads_now()
    with hac.Client(driver="caller", connection_timeout=5000) as client:
        assert threads_now() <= before  # no worker thread (one ending may lower it)
        assert client.driver == "caller" and client.params["driver"] == "caller"
        get = client.query(f"{http_server.url}/echo").result(timeout=WAIT)
        post = client.query(f"{http_server.url}/echo", b"hello").result(timeout=WAIT)
        assert threads_now() <= before
        stats = client.stats()
    assert get.ok and get.status == 200 and get.json()["method"] == "GET"
    assert post.ok and post.json()["body"] == "hello"
    assert (stats["requests"], stats["replies"], stats["errors"]) == (2, 2, 0)


def test_default_is_thread() -> None:
    with hac.Client(workers=2) as client:
        assert client.driver == "thread"


@pytest.mark.parametrize(
    ("params", "exc", "text"),
    [
        ({"driver": "fiber"}, hac.InvalidOption, "'thread' or 'caller'"),
        ({"driver": 1}, hac.InvalidOptionType, "'thread' or 'caller'"),
        ({"driver": "caller", "workers": 2}, hac.InvalidOption, "workers must be 1, got 2"),
    ],
)
def test_bad_driver(params: dict[str, object], exc: type[Exception], text: str) -> None:
    with pytest.raises(exc, match=text):
        hac.Client(**params)  # type: ignore[arg-type]


def test_many_in_flight_each_once(http_server: HTTPTestServer) -> None:
    """300 concurrent queries through completions(), then through batches:
    each answered once, nothing left in flight."""
    with hac.Client(driver="caller", connection_timeout=5000) as client:
        ids = {client.query(f"{http_server.url}/echo?i={i}").id for i in range(300)}
        seen = [r.id for r in client.completions(timeout=WAIT)]
        assert sorted(seen) == sorted(ids)
        more = {client.query(f"{http_server.url}/bytes/100").id for _ in range(200)}
        got: list[hac.Reply] = []
        for batch in client.completions(timeout=WAIT, batch=True):
            got.extend(batch)
        assert sorted(r.id for r in got) == sorted(more)
        assert all(r.ok and len(r.body) == 100 for r in got)
        stats = client.stats()
    assert stats["inflight"] == 0 and stats["replies"] == 500


def test_deadline_while_waiting(http_server: HTTPTestServer) -> None:
    """The waiting thread runs the timers: a 200 ms deadline against a
    2 s delay ends at the deadline, not at the server's reply."""
    with hac.Client(driver="caller", connection_timeout=200) as client:
        t0 = time.monotonic()
        reply = client.query(f"{http_server.url}/delay/2000").result(timeout=WAIT)
        took = time.monotonic() - t0
        stats = client.stats()
    assert not reply.ok and reply.timed_out, reply.err
    assert 0.15 < took < 1.5, took
    assert stats["timeouts"] == 1


def test_wait_timeout_then_reply(http_server: HTTPTestServer) -> None:
    """result(timeout) shorter than the transfer raises WaitTimeout; the
    next wait gets the reply (the request kept its place)."""
    with hac.Client(driver="caller", connection_timeout=5000) as client:
        h = client.query(f"{http_server.url}/delay/300")
        with pytest.raises(hac.WaitTimeout):
            h.result(timeout=0.05)
        reply = h.result(timeout=WAIT)
    assert reply.ok and reply.status == 200


def test_threads_share_the_loop(http_server: HTTPTestServer) -> None:
    """Eight threads each query and wait: one runs the loop at a time, the
    others get their replies from it or take the loop over."""
    errors: list[str] = []
    with hac.Client(driver="caller", connection_timeout=5000) as client:

        def worker(k: int) -> None:
            for i in range(40):
                r = client.query(f"{http_server.url}/delay/{(i % 3) * 5}?k={k}").result(timeout=WAIT)
                if not (r.ok and r.status == 200):
                    errors.append(f"{k}/{i}: {r.err}")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        stats = client.stats()
    assert not errors, errors[:3]
    assert stats["replies"] == 320 and stats["inflight"] == 0


def test_close_answers_in_flight(http_server: HTTPTestServer) -> None:
    """close() with requests nobody waited for: each gets a cancelled reply."""
    client = hac.Client(driver="caller", connection_timeout=5000)
    handles = [client.query(f"{http_server.url}/delay/1000") for _ in range(5)]
    client.close()
    replies = [h.result(timeout=WAIT) for h in handles]
    assert all(not r.ok and r.cancelled for r in replies), [r.err for r in replies]


def test_close_from_another_thread_while_waiting(http_server: HTTPTestServer) -> None:
    """A thread blocked in result() (running the loop) is released by a
    close() from another thread, with a cancelled reply."""
    client = hac.Client(driver="caller", connection_timeout=10000)
    h = client.query(f"{http_server.url}/delay/5000")
    out: list[hac.Reply] = []
    t = threading.Thread(target=lambda: out.append(h.result(timeout=WAIT)))
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    client.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 3.0
    assert out and out[0].cancelled, out


def test_await_is_refused(http_server: HTTPTestServer) -> None:
    async def go(client: hac.Client) -> None:
        await client.query(f"{http_server.url}/echo")

    with hac.Client(driver="caller", connection_timeout=5000) as client:
        with pytest.raises(hac.UsageError, match="driver='caller'"):
            asyncio.run(go(client))


def test_stream_reads_drive(http_server: HTTPTestServer) -> None:
    """A streamed body read chunk by chunk: each read runs the loop."""
    with hac.Client(driver="caller", connection_timeout=5000) as client:
        stream = client.query(f"{http_server.url}/bytes/300000", stream=True)
        head = stream.head(timeout=WAIT)
        body = b"".join(stream.iter_bytes(timeout=WAIT))
        assert head.status == 200
        assert stream.result(timeout=WAIT).ok
    assert len(body) == 300000

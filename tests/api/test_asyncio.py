"""The asyncio path: awaiting handles, suspended queries on a loop, readers."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import http_async_client as hac
from support.servers import HTTPTestServer


def test_await_query_returns_reply(http_server: HTTPTestServer) -> None:
    """``await client.query(url)`` gives the Reply."""

    async def main() -> hac.Reply:
        with hac.Client(connection_timeout=5000) as client:
            h = client.query(f"{http_server.url}/echo", "ping")
            reply = await asyncio.wait_for(h, 5)
            assert reply.id == h.id
            return reply

    reply = asyncio.run(main())
    assert isinstance(reply, hac.Reply)
    assert reply.ok and reply.status == 200
    data = json.loads(reply.body)
    assert data["method"] == "POST" and data["body"] == "ping"


def test_gather_200_concurrent(http_server: HTTPTestServer) -> None:
    """200 concurrent awaited queries all succeed, each with its own reply."""

    async def main() -> list[hac.Reply]:
        with hac.Client(connection_timeout=10000) as client:
            handles = [client.query(f"{http_server.url}/echo?i={i}") for i in range(200)]
            return list(await asyncio.wait_for(asyncio.gather(*handles), 15))

    replies = asyncio.run(main())
    assert len(replies) == 200
    assert all(r.ok and r.status == 200 for r in replies)
    paths = [json.loads(r.body)["path"] for r in replies]
    assert paths == [f"/echo?i={i}" for i in range(200)]
    assert len({r.id for r in replies}) == 200


def test_loop_not_blocked_while_waiting(http_server: HTTPTestServer) -> None:
    """A ticker keeps ticking while a /delay/300 query is awaited."""
    ticks: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> hac.Reply:
        with hac.Client(connection_timeout=5000) as client:
            stop = asyncio.Event()
            task = asyncio.create_task(ticker(stop))
            reply = await asyncio.wait_for(client.query(f"{http_server.url}/delay/300"), 5)
            stop.set()
            await asyncio.wait_for(task, 1)
            return reply

    t0 = time.monotonic()
    reply = asyncio.run(main())
    assert reply.ok and reply.body == b"delayed 300"
    assert len(ticks) >= 10
    # ticks are spread over the wait, not bunched after it
    assert ticks[5] - t0 < 0.2


def test_suspended_http_async_query_awaited(http_server: HTTPTestServer) -> None:
    """``await client.http_async_query(url, route)``: 0 after the route ran."""
    seen: list[hac.Reply] = []
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> tuple[int, int, int]:
        with hac.Client(connection_timeout=5000) as client:
            task = asyncio.create_task(ticker())
            rc = await asyncio.wait_for(
                client.http_async_query(f"{http_server.url}/delay/200", seen.append), 5
            )
            n_seen = len(seen)
            n_ticks = len(ticks)
            task.cancel()
            return rc, n_seen, n_ticks

    rc, n_seen, n_ticks = asyncio.run(main())
    assert rc == 0
    assert n_seen == 1
    assert seen[0].ok and seen[0].body == b"delayed 200"
    assert n_ticks >= 5  # the loop kept running during the suspended query


def test_not_suspended_route_runs_on_loop(http_server: HTTPTestServer) -> None:
    """suspend 0 inside the loop: 1 at once; the route runs on the loop."""
    info: dict[str, object] = {}

    async def main() -> int:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def route(reply: hac.Reply) -> None:
            info["reply"] = reply
            info["thread"] = threading.get_ident()
            try:
                info["loop"] = asyncio.get_running_loop()
            except RuntimeError:
                info["loop"] = None
            done.set()

        with hac.Client(connection_timeout=5000) as client:
            client.http_async_suspend(0)
            t0 = time.monotonic()
            rc = client.http_async_query(f"{http_server.url}/delay/100", route)
            assert time.monotonic() - t0 < 0.1
            assert "reply" not in info
            await asyncio.wait_for(done.wait(), 5)
            assert info["loop"] is loop
            return rc

    rc = asyncio.run(main())
    assert rc == 1
    reply = info["reply"]
    assert isinstance(reply, hac.Reply) and reply.ok and reply.body == b"delayed 100"
    assert info["thread"] == threading.get_ident()


def test_await_handle_from_other_thread(http_server: HTTPTestServer) -> None:
    """A query submitted by another thread can be awaited on the loop."""
    routed: list[int] = []

    async def main() -> tuple[list[hac.Reply], list[int]]:
        with hac.Client(connection_timeout=5000) as client:
            box: list[hac.QueryHandle] = []

            def submit() -> None:
                box.append(
                    client.query(
                        f"{http_server.url}/delay/100",
                        route=lambda r: routed.append(threading.get_ident()),
                    )
                )
                box.append(client.query(f"{http_server.url}/echo"))

            t = threading.Thread(target=submit)
            t.start()
            t.join(timeout=5)
            assert len(box) == 2
            await asyncio.sleep(0.05)  # the /echo reply is already there
            replies = [await asyncio.wait_for(h, 5) for h in box]
            assert [r.id for r in replies] == [h.id for h in box]
            return replies, list(routed)

    replies, routed_now = asyncio.run(main())
    assert replies[0].ok and replies[0].body == b"delayed 100"
    assert replies[1].ok and json.loads(replies[1].body)["method"] == "GET"
    assert routed_now == [threading.get_ident()]


def test_awaited_timeout_is_a_reply(http_server: HTTPTestServer) -> None:
    """An awaited query that misses its deadline returns a timed-out Reply."""

    async def main() -> hac.Reply:
        with hac.Client(connection_timeout=5000) as client:
            return await asyncio.wait_for(
                client.query(f"{http_server.url}/delay/1000", timeout=100), 5
            )

    t0 = time.monotonic()
    reply = asyncio.run(main())
    assert time.monotonic() - t0 < 0.9
    assert isinstance(reply, hac.Reply)
    assert reply.timed_out and not reply.ok
    assert reply.err and "TIMEOUT" in reply.err


def test_one_reader_per_loop(http_server: HTTPTestServer) -> None:
    """Many queries on one loop register a single reader (white-box)."""

    async def main() -> int:
        with hac.Client(connection_timeout=5000) as client:
            for _ in range(5):
                await asyncio.wait_for(
                    asyncio.gather(*(client.query(f"{http_server.url}/echo") for _ in range(20))),
                    5,
                )
            for _ in range(5):
                assert await asyncio.wait_for(
                    client.http_async_query(f"{http_server.url}/echo", lambda r: None), 5
                ) == 0
            return len(client._loops)

    assert asyncio.run(main()) == 1


def test_thread_blocked_while_loop_awaits(http_server: HTTPTestServer) -> None:
    """A thread blocked in result() and the loop's awaits both complete."""
    thread_out: list[hac.Reply] = []
    thread_err: list[BaseException] = []

    async def main() -> list[hac.Reply]:
        with hac.Client(connection_timeout=5000) as client:
            # attach the loop first so the thread competes with its reader
            await asyncio.wait_for(client.query(f"{http_server.url}/echo"), 5)

            def blocked() -> None:
                try:
                    h = client.query(f"{http_server.url}/delay/300")
                    thread_out.append(h.result(timeout=5))
                except BaseException as exc:
                    thread_err.append(exc)

            t = threading.Thread(target=blocked)
            t.start()
            replies = await asyncio.wait_for(
                asyncio.gather(
                    *(client.query(f"{http_server.url}/delay/{ms}") for ms in (100, 200, 400))
                ),
                5,
            )
            await asyncio.wait_for(asyncio.to_thread(t.join, 5), 6)
            assert not t.is_alive()
            return list(replies)

    replies = asyncio.run(main())
    assert thread_err == []
    assert [r.body for r in replies] == [b"delayed 100", b"delayed 200", b"delayed 400"]
    assert len(thread_out) == 1
    assert thread_out[0].ok and thread_out[0].body == b"delayed 300"


def test_await_cancelled_then_awaited_again(http_server) -> None:
    """An awaiter cancelled by a timeout does not spoil the handle: awaiting
    it again gets the reply."""

    async def main() -> hac.Reply:
        with hac.Client(connection_timeout=5000) as client:
            handle = client.query(f"{http_server.url}/delay/300")
            try:
                await asyncio.wait_for(handle, 0.05)
            except asyncio.TimeoutError:
                pass
            else:  # pragma: no cover - the server waits 300 ms
                raise AssertionError("the wait should have timed out")
            return await asyncio.wait_for(handle, 5)

    reply = asyncio.run(main())
    assert reply.ok and reply.status == 200 and reply.body == b"delayed 300"

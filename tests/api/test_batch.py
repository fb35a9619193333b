"""Batches: ``query_many()``, ``with client.batch():``, ``drain()``,
``completions(batch=True)``, the asyncio loop's buffered submits, and the
replies that share their drained batch's buffer."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from collections import Counter
from typing import Any

import pytest

import http_async_client as hac
from http_async_client._delivery import STREAMED
from support.clients import MakeClient
from support.servers import HTTPTestServer

REFUSED_URL = "http://127.0.0.1:9/"
WAIT_S = 15.0


def path_of(reply: hac.Reply) -> str:
    return str(json.loads(reply.body)["path"])


def take_all(client: hac.Client, count: int) -> list[hac.Reply]:
    """Every reply through completions(batch=True), bounded."""
    got: list[hac.Reply] = []
    for batch in client.completions(timeout=WAIT_S, batch=True):
        assert batch, "completions(batch=True) yielded an empty list"
        got.extend(batch)
        assert len(got) <= count
    return got


# ------------------------------------------------------------ query_many


def test_query_many_item_kinds(http_server: HTTPTestServer, client: hac.Client) -> None:
    """URLs, (url, post_data) pairs and mappings of query()'s arguments;
    one handle per item, in order, each with its own reply."""
    seen: list[int] = []
    items: list[Any] = [
        f"{http_server.url}/echo?a",
        (f"{http_server.url}/echo?b", b"body-b"),
        (f"{http_server.url}/echo?c", None),
        {"url": f"{http_server.url}/echo?d", "method": "PUT", "post_data": "dd",
         "headers": {"X-Batch": "yes"}, "xdata": {"k": 1}, "route": lambda r: seen.append(r.id)},
    ]
    handles = client.query_many(items)
    assert [h.url for h in handles] == [i if isinstance(i, str) else
                                        i[0] if isinstance(i, tuple) else i["url"] for i in items]
    replies = [h.result(timeout=WAIT_S) for h in handles]
    assert [path_of(r) for r in replies] == ["/echo?a", "/echo?b", "/echo?c", "/echo?d"]
    a, b, c, d = (json.loads(r.body) for r in replies)
    assert a["method"] == "GET" and b["method"] == "POST" and b["body"] == "body-b"
    assert c["method"] == "GET"
    assert d["method"] == "PUT" and d["body"] == "dd"
    assert ["X-Batch", "yes"] in d["headers"]
    assert replies[3].xdata == {"k": 1} and seen == [replies[3].id]
    assert len({h.id for h in handles}) == 4
    assert client.query_many([]) == []


def test_query_many_default_route(http_server: HTTPTestServer, client: hac.Client) -> None:
    """``route`` applies to the items that name none, once per reply."""
    ran: Counter[int] = Counter()
    client.route("COUNT", lambda r: ran.update([r.id]))
    handles = client.query_many([f"{http_server.url}/echo?{i}" for i in range(10)], "COUNT")
    for h in handles:
        h.result(timeout=WAIT_S)
        h.result(timeout=WAIT_S)
    assert ran == Counter(h.id for h in handles)


def test_query_many_refuses_everything_on_a_bad_item(
    http_server: HTTPTestServer, client: hac.Client
) -> None:
    """A bad item anywhere: an exception, and nothing at all is sent."""
    good = f"{http_server.url}/echo"
    cases: list[tuple[list[Any], type[Exception]]] = [
        ([good, "ftp://127.0.0.1/x"], hac.InvalidURL),
        ([good, (good, b"x", 3)], TypeError),
        ([good, 42], TypeError),
        ([good, {"post_data": b"x"}], TypeError),
        ([good, {"url": good, "method": "BREW"}], hac.InvalidMethod),
        ([good, {"url": good, "bogus": 1}], TypeError),
        ([good, {"url": good, "route": "NO-SUCH-ROUTE"}], hac.InvalidOption),
    ]
    for items, exc in cases:
        with pytest.raises(exc):
            client.query_many(items)
    assert client.stats()["requests"] == 0
    assert not client._pending
    client.close()
    with pytest.raises(hac.ClientClosed):
        client.query_many([good])


def test_query_many_errors_mixed_with_successes(
    http_server: HTTPTestServer, client: hac.Client
) -> None:
    """A refused connection in a batch is that item's error reply only."""
    handles = client.query_many([f"{http_server.url}/echo", REFUSED_URL, f"{http_server.url}/echo"])
    ok1, bad, ok2 = (h.result(timeout=WAIT_S) for h in handles)
    assert ok1.ok and ok2.ok and ok1.status == ok2.status == 200
    assert not bad.ok and bad.err and bad.status == 0
    with pytest.raises(hac.TransferError):
        bad.raise_for_error()


# ------------------------------------------------- drain / batch completions


def test_completions_batch_each_reply_once(
    http_server: HTTPTestServer, client: hac.Client
) -> None:
    """Lists of replies, never empty, each reply exactly once, routes run
    before the list is handed out; a reply claimed by result() is not in
    them."""
    routed: set[int] = set()
    handles = client.query_many([f"{http_server.url}/echo?{i}" for i in range(150)],
                                lambda r: routed.add(r.id))
    single = client.query(f"{http_server.url}/echo?single")
    claimed = handles[0].result(timeout=WAIT_S)
    got = take_all(client, 150)
    ids = [r.id for r in got]
    assert len(ids) == len(set(ids)) == 150
    assert set(ids) == {h.id for h in handles[1:]} | {single.id}
    assert routed >= set(ids) - {single.id} and claimed.id in routed
    assert all(h._state is STREAMED for h in handles[1:])
    assert list(client.completions(batch=True)) == []


def test_drain_timeouts(http_server: HTTPTestServer, client: hac.Client) -> None:
    """drain(0) takes what is ready, drain(x) waits up to x s for a first
    reply, drain(None) until one arrives; [] when nothing is in flight."""
    assert client.drain() == [] and client.drain(None) == []
    h = client.query(f"{http_server.url}/delay/400")
    t0 = time.monotonic()
    assert client.drain(0.05) == []
    assert time.monotonic() - t0 < 2
    got = client.drain(None)
    assert [r.id for r in got] == [h.id] and h.done()
    with pytest.raises(hac.WaitTimeout):
        client.query(f"{http_server.url}/delay/400")
        next(client.completions(timeout=0.05, batch=True))
    deadline = time.monotonic() + WAIT_S
    while not client.drain(0.5):
        assert time.monotonic() < deadline


def test_batch_consumers_across_threads(
    http_server: HTTPTestServer, make_client: MakeClient
) -> None:
    """Four threads submit with query_many while three others take with
    drain() and completions(batch=True): every reply exactly once."""
    client = make_client(connection_timeout=10000, workers=2)
    per_thread, rounds = 25, 4
    total = 4 * per_thread * rounds
    submitted: list[int] = []
    taken: list[int] = []
    lock = threading.Lock()
    done_submitting = threading.Event()

    def submit(k: int) -> None:
        for j in range(rounds):
            hs = client.query_many([f"{http_server.url}/echo?{k}-{j}-{i}" for i in range(per_thread)])
            with lock:
                submitted.extend(h.id for h in hs)

    def consume(use_drain: bool) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if use_drain:
                got = client.drain(0.05)
                with lock:
                    taken.extend(r.id for r in got)
            else:
                try:
                    for batch in client.completions(timeout=0.05, batch=True):
                        with lock:
                            taken.extend(r.id for r in batch)
                except hac.WaitTimeout:
                    pass
            with lock:
                if done_submitting.is_set() and len(taken) >= total:
                    return

    consumers = [threading.Thread(target=consume, args=(k != 1,)) for k in range(3)]
    submitters = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
    for t in consumers + submitters:
        t.start()
    for t in submitters:
        t.join(30)
    done_submitting.set()
    for t in consumers:
        t.join(40)
    assert not any(t.is_alive() for t in consumers + submitters)
    assert len(submitted) == total
    assert sorted(taken) == sorted(submitted)


# ------------------------------------------------------------- batch()


def test_batch_block_sends_at_exit(http_server: HTTPTestServer, client: hac.Client) -> None:
    """Inside the block nothing reaches the core; at its end all of it
    does, with one call (the requests counter jumps from 0 to 20)."""
    with client.batch() as same:
        assert same is client
        handles = [client.query(f"{http_server.url}/echo?{i}") for i in range(10)]
        with client.batch():  # nested: only the outermost sends
            handles += client.query_many([f"{http_server.url}/echo?m{i}" for i in range(10)])
        assert client.stats()["requests"] == 0
    assert client.stats()["requests"] == 20
    replies = [h.result(timeout=WAIT_S) for h in handles]
    assert [path_of(r) for r in replies] == (
        [f"/echo?{i}" for i in range(10)] + [f"/echo?m{i}" for i in range(10)]
    )


def test_batch_block_wait_and_cancel_inside(
    http_server: HTTPTestServer, client: hac.Client
) -> None:
    """result() on a buffered query sends the buffer first (no deadlock);
    cancel() of a buffered query cancels it; queries of other threads are
    not buffered by this thread's block."""
    with client.batch():
        slow = client.query(f"{http_server.url}/delay/3000")
        fast = client.query(f"{http_server.url}/echo?fast")
        assert fast.result(timeout=WAIT_S).ok
        other: list[hac.QueryHandle] = []
        t = threading.Thread(target=lambda: other.append(client.query(f"{http_server.url}/echo")))
        t.start()
        t.join(5)
        assert other[0].result(timeout=WAIT_S).ok
        late = client.query(f"{http_server.url}/delay/3000")
        assert late.cancel() is True
        assert slow.cancel() is True
    for h in (slow, late):
        r = h.result(timeout=WAIT_S)
        assert r.cancelled and not r.ok
        with pytest.raises(hac.Cancelled):
            r.raise_for_error()


def test_close_with_a_batch_buffered(http_server: HTTPTestServer, client: hac.Client) -> None:
    """close() inside a block: every buffered query gets one cancelled or
    finished reply, taken once by completions()."""
    with client.batch():
        handles = client.query_many([f"{http_server.url}/delay/2000"] * 5)
        handles.append(client.query(f"{http_server.url}/delay/2000"))
        client.close()
    replies = [h.result(timeout=WAIT_S) for h in handles]
    assert all(r.cancelled for r in replies)
    with pytest.raises(hac.ClientClosed):
        client.query(f"{http_server.url}/echo")


# ------------------------------------------------------------------ asyncio


def test_asyncio_submits_once_per_loop_pass(http_server: HTTPTestServer) -> None:
    """Queries issued by coroutines in one loop pass reach the core
    together at the loop's next pass; each awaiter gets its own reply."""

    async def main() -> None:
        with hac.Client(connection_timeout=10000) as client:
            handles = [client.query(f"{http_server.url}/echo?{i}") for i in range(50)]
            assert client.stats()["requests"] == 0
            await asyncio.sleep(0)
            assert client.stats()["requests"] == 50
            replies = await asyncio.wait_for(asyncio.gather(*handles), WAIT_S)
            assert [path_of(r) for r in replies] == [f"/echo?{i}" for i in range(50)]
            many = client.query_many([f"{http_server.url}/echo?m{i}" for i in range(30)])
            got = await asyncio.wait_for(asyncio.gather(*many), WAIT_S)
            assert [path_of(r) for r in got] == [f"/echo?m{i}" for i in range(30)]

    asyncio.run(main())


def test_asyncio_cancel_and_close_before_sent(http_server: HTTPTestServer) -> None:
    """A buffered coroutine query can be cancelled, and close() before the
    loop sent the buffer gives each its cancelled reply."""

    async def main() -> None:
        client = hac.Client(connection_timeout=10000)
        h = client.query(f"{http_server.url}/delay/3000")
        assert h.cancel() is True
        r = await asyncio.wait_for(h, WAIT_S)
        assert r.cancelled
        hs = [client.query(f"{http_server.url}/delay/3000") for _ in range(5)]
        client.close()
        for r in await asyncio.wait_for(asyncio.gather(*hs), WAIT_S):
            assert r.cancelled

    asyncio.run(main())


def test_asyncio_routes_and_other_consumers(http_server: HTTPTestServer) -> None:
    """Two loops in two threads and a thread draining: each loop's replies
    settle on it (in one callback per batch), with their routes run there;
    drain() in the third thread takes only the thread's own queries."""
    client = hac.Client(connection_timeout=10000)
    results: dict[int, list[tuple[str, int]]] = {}
    errors: list[BaseException] = []

    def run_loop(k: int) -> None:
        async def main() -> None:
            me = threading.get_ident()
            ran: list[int] = []

            def route(r: hac.Reply) -> None:
                assert threading.get_ident() == me
                ran.append(r.id)

            hs = client.query_many([f"{http_server.url}/echo?{k}-{i}" for i in range(40)], route)
            replies = await asyncio.wait_for(asyncio.gather(*hs), WAIT_S)
            assert sorted(ran) == sorted(h.id for h in hs)
            results[k] = [(path_of(r), r.id) for r in replies]

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            errors.append(exc)

    mine = client.query_many([f"{http_server.url}/echo?t{i}" for i in range(20)])
    threads = [threading.Thread(target=run_loop, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    drained: list[hac.Reply] = []
    deadline = time.monotonic() + WAIT_S
    while any(t.is_alive() for t in threads) or len(drained) < 20:
        drained += client.drain(0.02)
        assert time.monotonic() < deadline
    for t in threads:
        t.join(WAIT_S)
    client.close()
    assert not errors, errors
    assert sorted(r.id for r in drained) == sorted(h.id for h in mine)
    for k in range(2):
        assert [p for p, _ in results[k]] == [f"/echo?{k}-{i}" for i in range(40)]


# ------------------------------------------------------- shared batch buffer


def test_replies_sharing_a_batch_buffer(http_server: HTTPTestServer, client: hac.Client) -> None:
    """Replies drained together read their own bytes from the shared
    buffer, again and again, and keep them after pickling and after the
    others are gone."""
    handles = client.query_many([f"{http_server.url}/bytes/{n}" for n in range(1, 40)])
    while not all(h.done() for h in handles):
        client.drain(0.05)
    replies = [h._reply for h in handles]
    for n, r in enumerate(replies, 1):
        assert r is not None and r.ok and r.bs == n and len(r.body) == n
        assert r.body == r.body and r.raw.endswith(r.body) and r.ml == len(r.raw)
        assert r.raw.startswith(b"HTTP/1.1 200") and r.hdr("content-length") == str(n)
        assert r.reason == "OK" and r.curl_code == 0 and r.err is None
        copy = pickle.loads(pickle.dumps(r))
        assert (copy.body, copy.raw, copy.status, copy.url, copy.headers) == (
            r.body, r.raw, r.status, r.url, r.headers)
    keep = replies[17]
    assert keep is not None
    body = keep.body
    del replies, handles
    assert keep.body == body and len(body) == 18

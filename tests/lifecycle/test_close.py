"""``close()`` closes the completion fd at once, wakes the threads waiting
on the client, and leaves no fd behind, even with the client and its
replies still referenced."""

from __future__ import annotations

import os
import threading
import time

import http_async_client as hac
from support.fds import EVENTFD, FdBaseline
from support.servers import HTTPTestServer

WAIT = 10.0  # bound of every single wait for a reply, s
FD_SETTLE_S = 3.0  # server-side sockets close asynchronously


def test_close_closes_completion_fd_at_once(
    fresh_http_server: HTTPTestServer, open_fds: FdBaseline
) -> None:
    """After close() the client's completion eventfd is closed at once, while
    the client, one of its replies and a handle are still referenced."""
    client = hac.Client(workers=1, connection_timeout=5000)
    created = open_fds.excess()
    assert created[EVENTFD] >= 1, created  # the completion fd (and the worker's)
    reply = client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT)
    assert reply.ok, reply.err
    pending = client.query(f"{fresh_http_server.url}/delay/3000")
    client.close()
    right_after = open_fds.excess()
    extra = open_fds.settle(seconds=FD_SETTLE_S)
    assert pending.result(timeout=WAIT).cancelled
    assert right_after[EVENTFD] == 0, f"eventfds still open right after close(): {right_after}"
    assert not extra, f"fds still open after close(): {extra}"
    assert reply.ok and client.closed  # both still referenced here


def test_close_wakes_threads_blocked_on_the_client(fresh_http_server: HTTPTestServer) -> None:
    """A thread blocked in completions() and one in result() of a pending
    handle wake up when another thread calls close(): no hang, no crash,
    even when the freed fd number is reused at once."""
    for round_ in range(5):
        client = hac.Client(workers=1, connection_timeout=10000)
        slow = [client.query(f"{fresh_http_server.url}/delay/5000") for _ in range(2)]
        outcome: dict[str, object] = {}

        def in_completions() -> None:
            try:
                outcome["completions"] = [r.cancelled for r in client.completions(timeout=8)]
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["completions"] = exc

        def in_result() -> None:
            try:
                outcome["result"] = slow[1].result(timeout=8)
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["result"] = exc

        threads = [threading.Thread(target=f, daemon=True) for f in (in_completions, in_result)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # both are blocked waiting on the client by now
        t0 = time.monotonic()
        client.close()
        # take the freed fd numbers: a waiter still polling the old number
        # would now poll this pipe, which never becomes readable
        r_fd, w_fd = os.pipe()
        try:
            for t in threads:
                t.join(timeout=5)
            woke = time.monotonic() - t0
        finally:
            os.close(r_fd)
            os.close(w_fd)
        hung = [f.__name__ for f, t in zip((in_completions, in_result), threads) if t.is_alive()]
        assert not hung, f"round {round_}: {hung} still waiting 5 s after close(); {outcome}"
        assert woke < 3.0, f"round {round_}: waiters woke {woke:.1f} s after close()"
        got = outcome["completions"]
        assert isinstance(got, list | hac.ClientClosed), f"completions(): {got!r}"
        assert isinstance(got, hac.ClientClosed) or all(got), got  # only cancelled replies
        res = outcome["result"]
        assert isinstance(res, hac.ClientClosed) or (isinstance(res, hac.Reply) and res.cancelled), (
            f"result(): {res!r}"
        )


def test_50_closed_clients_leak_no_fds(
    fresh_http_server: HTTPTestServer, open_fds: FdBaseline
) -> None:
    """Creating and closing 50 clients while holding each client and one
    reply of each leaves no fd open."""
    held: list[tuple[hac.Client, hac.Reply]] = []
    for _ in range(50):
        client = hac.Client(workers=1, connection_timeout=5000)
        reply = client.query(f"{fresh_http_server.url}/echo").result(timeout=WAIT)
        client.close()
        held.append((client, reply))
    extra = open_fds.settle(seconds=FD_SETTLE_S)
    assert all(r.ok for _, r in held)
    assert not extra, f"after 50 closed clients: {extra}"

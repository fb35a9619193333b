"""Lifecycle: interpreter exit and fork with live clients (subprocesses)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import textwrap
import time
import http_async_client as hac
from support.fds import FdBaseline


def run_py(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_exit_with_requests_in_flight(http_server) -> None:
    """1,000 slow requests in flight at exit: no hang, no crash."""
    code = f"""
        import http_async_client as hac
        c = hac.Client(connection_timeout=20000)
        hs = [c.query("{http_server.url}/delay/3000") for _ in range(300)]
        d = hac.Client(workers=2, connection_timeout=20000)
        hs += [d.query("http://127.0.0.1:9/") for _ in range(700)]
        print("leaving")
    """
    t0 = time.monotonic()
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "leaving"
    assert time.monotonic() - t0 < 5


def test_fork_child_rebuilds_parent_unaffected(http_server) -> None:
    """A forked child's first use of the parent's client rebuilds it: the
    child's replies and stats are its own, the parent's stay the parent's."""
    code = f"""
        import os, http_async_client as hac
        url = "{http_server.url}/echo"
        c = hac.Client(connection_timeout=5000)  # a loaded machine is slow
        assert c.query(url).result(5).status == 200
        pid = os.fork()
        if pid == 0:
            assert c.stats()["requests"] == 0  # the child's own core
            r = c.query(url).result(5)
            assert c.http_async_query(url, None) == 0
            ok = r.status == 200 and c.stats()["replies"] == 2
            c.close()
            os._exit(0 if ok else 4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert c.query(url).result(5).status == 200
        assert c.stats()["replies"] == 2
        c.close()
        print("ok")
    """
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.fixture
def loopback():
    """The package's loopback server in a child process, so that this
    process's fds and threads are the client's alone."""
    server = subprocess.Popen(
        [sys.executable, "-m", "http_async_client._loopback", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    yield f"http://127.0.0.1:{int(server.stdout.readline())}"
    server.stdin.close()
    server.wait(timeout=10)


def _threads() -> int:
    """Native threads Python's threading does not know: the C workers (the
    in-process test servers' threads come and go and are not counted)."""
    import os
    import threading

    known = {t.native_id for t in threading.enumerate()}
    return len({int(t) for t in os.listdir("/proc/self/task")} - known)


def _settle(probe, target: int, seconds: float = 3.0) -> int:
    deadline = time.monotonic() + seconds
    value = probe()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.02)
        value = probe()
    return value


def test_close_with_1000_in_flight(loopback: str, open_fds: FdBaseline) -> None:
    """close(): every one of 1,000 in-flight requests gets exactly one
    (cancelled) reply, within 1 s, and no thread or fd is left behind."""
    import gc

    import http_async_client as hac

    threads = _threads()
    client = hac.Client(workers=2, connection_timeout=30000)
    handles = [client.query(f"{loopback}/delay/5000") for _ in range(1000)]
    seen: list[int] = []
    time.sleep(0.3)  # let the workers start them
    t0 = time.monotonic()
    client.close()
    assert time.monotonic() - t0 < 1.0
    for reply in client.completions(timeout=1):
        seen.append(reply.id)
    assert sorted(seen) == sorted(h.id for h in handles)  # each exactly once
    assert all(h.result(timeout=0).cancelled for h in handles)
    assert client.stats()["cancelled"] == 1000
    del client, handles, reply
    gc.collect()
    assert _settle(_threads, threads) <= threads
    assert open_fds.settle_total() <= open_fds.total


def test_cancel_at_random_points_leaves_nothing(loopback: str, open_fds: FdBaseline) -> None:
    """Cancels racing the transfers (before start, connecting, mid-reply,
    after the end): one reply each, nothing in flight, fds back."""
    import gc
    import random

    import http_async_client as hac

    rng = random.Random(7)
    with hac.Client(connection_timeout=5000) as client:
        handles = []
        for i in range(300):
            h = client.query(f"{loopback}/delay/{rng.choice([0, 5, 50, 200])}")
            handles.append(h)
            if rng.random() < 0.5:
                if rng.random() < 0.5:
                    time.sleep(rng.random() / 100)
                h.cancel()
        replies = [h.result(timeout=10) for h in handles]
        stats = client.stats()
        assert stats["inflight"] == 0 and stats["queued"] == 0
        assert stats["replies"] + stats["cancelled"] + stats["errors"] == 300
        assert sum(r.cancelled for r in replies) == stats["cancelled"] > 0
    del client, handles, replies, h
    gc.collect()
    assert open_fds.settle_total() <= open_fds.total


def test_blocking_route_and_slow_consumer_lose_nothing(http_server) -> None:
    """A route that blocks for a second and a slow completions() consumer:
    no reply lost or duplicated."""
    import threading

    import http_async_client as hac

    with hac.Client(connection_timeout=5000) as client:
        calls: list[int] = []

        def slow_route(reply) -> None:
            if not calls:
                time.sleep(1.0)
            calls.append(reply.id)

        routed = [client.query(f"{http_server.url}/echo", route=slow_route) for _ in range(20)]
        plain = [client.query(f"{http_server.url}/echo") for _ in range(50)]
        got: list[int] = []
        worker = threading.Thread(target=lambda: got.extend(r.id for r in client.completions(timeout=10)))
        worker.start()
        for _ in range(5):  # a second consumer, slow
            time.sleep(0.05)
            got.extend(r.id for r in [next(client.completions(timeout=10), None)] if r)
        worker.join(timeout=20)
        assert not worker.is_alive()
        everything = sorted(h.id for h in routed + plain)
        assert sorted(got) == everything
        assert sorted(calls) == sorted(h.id for h in routed)


def test_result_only_use_keeps_nothing(http_server) -> None:
    """Code that only ever calls result() (never completions()) does not
    keep the handles and replies it has dropped."""
    import gc
    import weakref

    # a generous deadline: 300 at once on a loaded machine must not time out
    with hac.Client(connection_timeout=8000) as c:
        refs = []
        for _ in range(5):
            hs = [c.query(f"{http_server.url}/echo") for _ in range(300)]
            time.sleep(0.2)  # replies arrive before anyone waits: they queue
            for h in hs:
                assert h.result(timeout=10).ok
            refs += [weakref.ref(h) for h in hs]
            del hs, h
        gc.collect()
        alive = sum(r() is not None for r in refs)
        assert alive <= 128, f"{alive} of {len(refs)} handles still referenced"
        assert c.dispatch() == 0  # and nothing claimed is handed out again

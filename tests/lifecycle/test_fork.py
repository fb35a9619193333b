"""Fork: a pre-forking harness (``os.fork`` and ``multiprocessing``'s fork
start method) whose children use the parent's client; the parent's
requests in flight at fork() complete in the parent only."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap

from support.servers import HTTPTestServer

CHILDREN = 4
PER_CHILD = 10
PARENT_INFLIGHT = 20


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout,
    )


def _ids(server: HTTPTestServer) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for req in server.requests:
        _, _, query = req["path"].partition("?id=")
        if query:
            seen[query] += 1
    return seen


def test_prefork_children_use_parent_client(fresh_http_server: HTTPTestServer) -> None:
    """The parent uses its client, sends 20 slow requests and forks 4
    children while they are in flight.  Each child uses the parent's
    client (sync and asyncio) and gets its own replies; waiting on or
    cancelling a parent's handle in the child raises/returns at once; the
    parent gets its 20 replies; the server saw every request exactly once."""
    base = fresh_http_server.url
    code = f"""
        import asyncio, os, sys, time, http_async_client as hac
        base = "{base}"
        c = hac.Client(workers=2, connection_timeout=20000)
        assert c.query(base + "/echo?id=warm").result(10).status == 200
        slow = [c.query(base + f"/delay/400?id=parent-{{i}}") for i in range({PARENT_INFLIGHT})]
        kids = []
        for k in range({CHILDREN}):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    try:
                        slow[0].result(5)
                        code = 10
                    except hac.ClientClosed as exc:
                        assert "parent" in str(exc), exc
                    assert slow[1].cancel() is False
                    assert c.stats()["requests"] == 0
                    hs = [c.query(base + f"/echo?id=child-{{k}}-{{j}}") for j in range({PER_CHILD})]
                    for j, h in enumerate(hs):
                        r = h.result(10)
                        assert r.status == 200, r.err
                    async def one():
                        return await c.query(base + f"/echo?id=child-{{k}}-aio")
                    assert asyncio.run(one()).status == 200
                    # nothing of the parent shows in the child's completions
                    assert list(c.completions(1)) == []
                    assert c.stats()["replies"] == {PER_CHILD} + 1
                    assert c.latency(base)["count"] == {PER_CHILD} + 1
                    c.close()
                    code = 0
                except BaseException as exc:
                    print("child", k, repr(exc), file=sys.stderr)
                finally:
                    os._exit(code)
            kids.append(pid)
        for pid in kids:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
        for h in slow:
            r = h.result(20)
            assert r.status == 200, r.err
        s = c.stats()
        assert s["replies"] == {PARENT_INFLIGHT} + 1, s
        c.close()
        print("ok")
    """
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    seen = _ids(fresh_http_server)
    expected = {"warm"} | {f"parent-{i}" for i in range(PARENT_INFLIGHT)}
    for k in range(CHILDREN):
        expected |= {f"child-{k}-{j}" for j in range(PER_CHILD)} | {f"child-{k}-aio"}
    assert set(seen) == expected
    assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n != 1]


def test_multiprocessing_fork_pool(fresh_http_server: HTTPTestServer) -> None:
    """A multiprocessing pool (fork start method) whose tasks use a
    module-level client made and used by the parent."""
    base = fresh_http_server.url
    code = f"""
        import multiprocessing, os, http_async_client as hac
        base = "{base}"
        client = hac.Client(connection_timeout=20000)

        def task(i):
            r = client.query(base + f"/echo?id=task-{{i}}").result(10)
            return (os.getpid(), r.status)

        if __name__ == "__main__":
            assert client.query(base + "/echo?id=parent").result(10).status == 200
            with multiprocessing.get_context("fork").Pool(3) as pool:
                out = pool.map(task, range(30))
            assert all(status == 200 for _, status in out), out
            assert os.getpid() not in {{pid for pid, _ in out}}
            assert client.query(base + "/echo?id=parent-after").result(10).status == 200
            assert client.stats()["replies"] == 2
            client.close()
            print("ok")
    """
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    seen = _ids(fresh_http_server)
    assert set(seen) == {"parent", "parent-after"} | {f"task-{i}" for i in range(30)}
    assert all(n == 1 for n in seen.values())


def test_child_fds_of_the_parent_core_closed(fresh_http_server: HTTPTestServer) -> None:
    """In the child, the parent core's connections and completion fd are
    closed at fork (the parent's connections stay usable in the parent); a
    client closed before fork() stays closed in the child."""
    base = fresh_http_server.url
    code = f"""
        import os, http_async_client as hac
        base = "{base}"
        c = hac.Client(connection_timeout=20000)
        hs = [c.query(base + "/echo") for _ in range(8)]
        assert all(h.result(10).status == 200 for h in hs)
        closed = hac.Client()
        closed.close()
        def socks():
            n = 0
            for fd in os.listdir("/proc/self/fd"):
                try:
                    n += os.readlink(f"/proc/self/fd/{{fd}}").startswith("socket:")
                except OSError:  # listdir's own fd
                    pass
            return n
        before = socks()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, str(before - socks()).encode())
            ok = True
            try:
                closed.query(base + "/echo")
                ok = False
            except hac.ClientClosed:
                pass
            os._exit(0 if ok else 5)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        closed_in_child = int(os.read(r, 100))
        assert c.query(base + "/echo").result(10).status == 200
        c.close()
        print("ok", closed_in_child)
    """
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    word, closed = result.stdout.split()
    assert word == "ok"
    # the child closed its copy of every connection the server accepted,
    # and the parent went on using them (no new connection after fork)
    assert int(closed) == fresh_http_server.connections
    assert 1 <= fresh_http_server.connections <= 8

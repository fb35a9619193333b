"""Destination sets survive the fork rebuild: a pre-forked child uses the
parent's client and its sets (issue #15)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import http_async_client as hac
from support.scripted import ScriptedServer


@pytest.fixture
def pair() -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    a, b = ScriptedServer(), ScriptedServer()
    yield a, b
    a.stop()
    b.stop()


def test_child_uses_the_parents_destination_sets(pair: tuple[ScriptedServer, ScriptedServer]) -> None:
    a, b = pair
    with hac.Client(connection_timeout=5000) as c:
        c.destinations("svc", [a.url, b.url])
        assert all(c.query("dest://svc/p").result().ok for _ in range(4))
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            code = 1
            try:
                rs = [c.query("dest://svc/child").result() for _ in range(10)]
                state = c.destination_state("svc")
                ok = all(r.ok for r in rs) and sum(d["requests"] for d in state) == 10
                os.write(wfd, b"ok" if ok else repr([r.err for r in rs]).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            said = f.read()
        _, status = os.waitpid(pid, 0)
        assert said == b"ok" and status == 0, said
        children = [x for s in (a, b) for x in s.seen if x.path == "/child"]
        assert len(children) == 10 and {x.conn for x in a.seen if x.path == "/child"}
        # the parent's view is its own
        assert sum(d["requests"] for d in c.destination_state("svc")) == 4

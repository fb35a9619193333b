"""The worker keeps one libev watcher per connection across transfers.

When libcurl stops watching a kept connection's socket the worker parks
its watcher instead of dropping it; when the connection is closed (by
either side) and the kernel gives its number to a new socket, the parked
watcher must not be taken for the new one, or the new transfer is never
polled and hangs until its deadline.  These tests close keep-alive
connections at random points so that numbers are reused all the time.
"""

from __future__ import annotations

import os
import random
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

import http_async_client as hac
from support.fds import FdBaseline

SCALE = float(os.environ.get("HAC_TEST_SCALE", "1"))
WAIT = 10.0  # bound of each wait for a reply, s
BUDGET = 120.0  # bound of a whole load loop, s


class _Handler(socketserver.BaseRequestHandler):
    """HTTP/1.1 keep-alive; the body names the request's path.  After a
    random number of replies the connection is closed: at once, or after
    it sat idle for a moment (a parked watcher then sees the close)."""

    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5.0)
        rnd = random.Random(self.server.seed + self.client_address[1])
        left = rnd.randint(1, 6)
        data = b""
        try:
            while left:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
                left -= 1
            if rnd.random() < 0.5:
                time.sleep(rnd.random() * 0.005)  # idle, then closed under the client
        except OSError:
            return
        finally:
            with self.server.lock:
                self.server.closed += 1
            conn.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, seed: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seed = seed
        self.lock = threading.Lock()
        self.closed = 0


@pytest.fixture
def closing_server() -> Iterator[_Server]:
    srv = _Server(seed=12)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.mark.parametrize("conc", [1, 16])
def test_connections_closed_at_random_points(closing_server: _Server, conc: int) -> None:
    """Every request is answered (its own body, once), none waits for its
    deadline, and the client's fds are back to the baseline after close."""
    base = FdBaseline(collect=True)
    url = f"http://127.0.0.1:{closing_server.server_address[1]}"
    total = max(200, int(2000 * SCALE))
    with hac.Client(connection_timeout=int(WAIT * 1000), workers=2) as c:
        paths: dict[int, str] = {}
        sent = 0
        t0 = time.monotonic()
        for _ in range(conc):
            p = f"/r{sent}"
            paths[c.query(url + p).id] = p
            sent += 1
        for r in c.completions(timeout=WAIT):
            assert r.ok, r.err
            assert r.status == 200
            assert r.body.decode() == paths.pop(r.id)
            assert r.time("total") < 5_000_000, "a request waited for its deadline"
            if sent < total and time.monotonic() - t0 < BUDGET:
                p = f"/r{sent}"
                paths[c.query(url + p).id] = p
                sent += 1
        assert not paths
        assert sent == total
        st = c.stats()
        assert st["errors"] == 0 and st["timeouts"] == 0
    assert closing_server.closed > total // 7, "the server closed too few connections to test reuse"
    base.assert_back(what="after close()")


def test_idle_connections_closed_by_server(closing_server: _Server) -> None:
    """Bursts separated by pauses: between bursts every kept connection is
    closed by the server while its watcher is parked; the next burst must
    not stall on one of them."""
    url = f"http://127.0.0.1:{closing_server.server_address[1]}"
    with hac.Client(connection_timeout=int(WAIT * 1000)) as c:
        for burst in range(max(5, int(20 * SCALE))):
            hs = [c.query(f"{url}/b{burst}-{i}") for i in range(8)]
            for i, h in enumerate(hs):
                r = h.result(timeout=WAIT)
                assert r.ok, r.err
                assert r.body == f"/b{burst}-{i}".encode()
            time.sleep(0.02)  # the server closes the idle ones meanwhile

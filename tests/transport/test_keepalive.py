"""TCP keep-alive (5.x): tcp_keepalive/tcp_ka_idle/tcp_ka_interval, the
per-query keywords and every ``http_req`` spelling, read back from the
client's own socket (/proc/net/tcp timers and getsockopt on a dup)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest

import http_async_client as hac
from support.servers import HTTPTestServer

WAIT = 10.0  # bound of every single wait for a reply, s


def _client_sockets(port: int) -> list[tuple[int, int, float]]:
    """(inode, timer_active, timer seconds) of established IPv4 sockets whose
    remote port is ``port``, from /proc/net/tcp (timer_active 2 = keepalive)."""
    out: list[tuple[int, int, float]] = []
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rem_port = int(fields[2].split(":")[1], 16)
            if rem_port != port or fields[3] != "01":
                continue
            timer, when = fields[5].split(":")
            out.append((int(fields[9]), int(timer, 16), int(when, 16) / hz))
    return out


def _sockopts(inode: int) -> tuple[int, int, int] | None:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL) of this process's socket
    with that inode (curl's own socket, read through a dup)."""
    target = f"socket:[{inode}]"
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != target:
                continue
            dup = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        with dup:
            return (
                dup.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            )
    return None


def keepalive_state(
    client: hac.Client, server: HTTPTestServer, **options: Any
) -> tuple[int, float, tuple[int, int, int] | None]:
    """While a /delay/700 query is in flight: (timer_active, timer s,
    sockopts) of the client's socket to ``server``."""
    h = client.query(f"{server.url}/delay/700", **options)
    deadline = time.monotonic() + 0.6
    found: tuple[int, int, float] | None = None
    while found is None and time.monotonic() < deadline:
        socks = _client_sockets(server.port)
        if socks:
            found = socks[0]
        else:
            time.sleep(0.01)
    opts = _sockopts(found[0]) if found is not None else None
    reply = h.result(timeout=WAIT)
    assert reply.ok and reply.status == 200, reply.err
    assert found is not None, "no established client socket seen"
    return found[1], found[2], opts


def test_keepalive_module_params(fresh_http_server: HTTPTestServer) -> None:
    """tcp_keepalive=1, tcp_ka_idle=7, tcp_ka_interval=3 reach the socket."""
    with hac.Client(connection_timeout=5000, tcp_keepalive=1, tcp_ka_idle=7, tcp_ka_interval=3) as c:
        timer, seconds, opts = keepalive_state(c, fresh_http_server)
    assert timer == 2  # keepalive timer armed
    assert 6.0 < seconds <= 7.0
    assert opts is not None and opts[0] != 0
    assert opts[1:] == (7, 3)


def test_keepalive_off_by_default(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """Without tcp_keepalive the socket has no keepalive timer."""
    timer, _, opts = keepalive_state(client, fresh_http_server)
    assert timer != 2
    assert opts is not None and opts[0] == 0


def test_keepalive_module_idle_without_flag(fresh_http_server: HTTPTestServer) -> None:
    """Timers alone (tcp_keepalive 0) do not switch keep-alive on."""
    with hac.Client(connection_timeout=5000, tcp_ka_idle=7, tcp_ka_interval=3) as c:
        timer, _, opts = keepalive_state(c, fresh_http_server)
    assert timer != 2
    assert opts is not None and opts[0] == 0


def test_keepalive_query_keywords(client: hac.Client, fresh_http_server: HTTPTestServer) -> None:
    """keepalive/ka_idle/ka_interval keywords of query()."""
    timer, seconds, opts = keepalive_state(client, fresh_http_server, keepalive=1, ka_idle=9, ka_interval=4)
    assert timer == 2
    assert 8.0 < seconds <= 9.0
    assert opts is not None and opts[0] != 0 and opts[1:] == (9, 4)


@pytest.mark.parametrize(
    "flag, idle, interval",
    [
        ("keepalive", "ka_idle", "ka_interval"),
        ("tcp_keepalive", "ka-idle", "ka-interval"),
        ("tcp_keepalive", "tcp_ka_idle", "tcp_ka_interval"),
    ],
)
def test_keepalive_http_req_spellings(
    client: hac.Client, fresh_http_server: HTTPTestServer, flag: str, idle: str, interval: str
) -> None:
    """Every spelling of the keep-alive keys of http_req."""
    client.http_req[flag] = 1
    client.http_req[idle] = 11
    client.http_req[interval] = 5
    timer, seconds, opts = keepalive_state(client, fresh_http_server)
    assert timer == 2
    assert 10.0 < seconds <= 11.0
    assert opts is not None and opts[0] != 0 and opts[1:] == (11, 5)


def test_keepalive_query_overrides_module(fresh_http_server: HTTPTestServer) -> None:
    """Per-query keepalive=0 wins over the module's tcp_keepalive=1."""
    with hac.Client(connection_timeout=5000, tcp_keepalive=1, tcp_ka_idle=7) as c:
        timer, _, opts = keepalive_state(c, fresh_http_server, keepalive=0)
    assert timer != 2
    assert opts is not None and opts[0] == 0

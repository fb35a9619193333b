"""Self-tests of support.transport_servers (UnixHTTPServer, DripServer,
FullBacklogListener, CountingHTTPServer) with raw sockets and http.client."""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import time

import pytest

from support.servers import pattern_bytes
from support.transport_servers import (
    CountingHTTPServer,
    DripServer,
    FullBacklogListener,
    UnixHTTPServer,
    listen_overflows,
)

HOST = "127.0.0.1"


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One Content-Length response: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"EOF inside the head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "EOF inside the body"
        body += chunk
    return head, body


# ------------------------------------------------------------------ Unix


def _unix(server: UnixHTTPServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(server.path)
    return sock


def test_unix_server_keeps_alive_and_records(unix_http_server: UnixHTTPServer) -> None:
    server = unix_http_server
    with _unix(server) as sock:
        sock.sendall(b"GET /a?b=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"unix:GET /a?b=1"
        sock.sendall(b"POST /p HTTP/1.1\r\nHost: sock.test\r\nContent-Length: 3\r\n\r\nxyz")
        assert _read_response(sock)[1] == b"unix:POST /p"
        sock.sendall(
            b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\n0\r\n\r\n"
        )
        assert _read_response(sock)[1] == b"unix:PUT /c"
    assert [(r["method"], r["path"], r["host"], r["body"]) for r in server.requests] == [
        ("GET", "/a?b=1", "localhost", b""),
        ("POST", "/p", "sock.test", b"xyz"),
        ("PUT", "/c", "h", b"hi"),
    ]
    assert server.connections == 1 and server.conns.records[0].requests == 3
    assert server.port is None and server.url == "http://localhost"


def test_unix_server_honours_connection_close_and_head(unix_http_server: UnixHTTPServer) -> None:
    with _unix(unix_http_server) as sock:
        sock.sendall(
            b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):  # ends: the server closes after /g
            data += chunk
    first, _, second = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 12" in first  # len("unix:HEAD /h"): HEAD gets no body
    assert second.startswith(b"HTTP/1.1 200 OK") and second.endswith(b"\r\n\r\nunix:GET /g")
    assert b"Connection: close" in second


def test_unix_server_removes_its_socket() -> None:
    server = UnixHTTPServer()
    path, directory = server.path, os.path.dirname(server.path)
    assert os.path.exists(path) and len(path.encode()) < 108
    server.close()
    assert not os.path.exists(path) and not os.path.exists(directory)
    given = os.path.join(directory + "-given.sock")
    with UnixHTTPServer(given) as server:
        assert server.path == given
        with _unix(server) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock)[1] == b"unix:GET /"
    assert not os.path.exists(given)


# ------------------------------------------------------------------ drip


def _ask(server: DripServer) -> socket.socket:
    sock = socket.create_connection((HOST, server.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def _head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        byte = sock.recv(1)  # byte by byte: leave the body in the socket
        assert byte, f"EOF inside the head: {data!r}"
        data += byte
    return data


def test_drip_sends_one_byte_per_interval() -> None:
    with DripServer(size=4, interval=0.25) as server, _ask(server) as sock:
        t0 = time.monotonic()
        head = _head(sock)
        assert time.monotonic() - t0 < 1.0  # the head is not dripped (it has 80 bytes)
        assert b"Content-Length: 4\r\n" in head
        body = b""
        while len(body) < 4:
            body += sock.recv(10)
        spread = time.monotonic() - t0
        assert body == pattern_bytes(4)
        assert spread >= 0.95  # 4 bytes, 0.25 s apart
        assert server.outcomes.wait_for(1)
    (out,) = server.outcomes
    assert out["complete"] and out["sent"] == 4 and not out["client_closed"]
    gaps = [b - a for a, b in zip([0.0, *out["sent_at"]], out["sent_at"])]
    assert len(gaps) == 4 and min(gaps) >= 0.25, gaps


def test_drip_notices_the_client_hanging_up() -> None:
    with DripServer(size=100, interval=0.1) as server:
        with _ask(server) as sock:
            _head(sock)
            assert sock.recv(1) and sock.recv(1)
        t_closed = time.monotonic()
        assert server.outcomes.wait_for(1, timeout=2)
        assert time.monotonic() - t_closed < 2
    (out,) = server.outcomes
    assert out["client_closed"] and not out["complete"] and 2 <= out["sent"] < 100


def test_drip_chunks() -> None:
    with DripServer(size=10, interval=0.1, chunk=4) as server, _ask(server) as sock:
        _head(sock)
        body = b""
        while len(body) < 10:
            body += sock.recv(100)
        assert body == pattern_bytes(10)
        assert server.outcomes.wait_for(1)
    assert len(server.outcomes[0]["sent_at"]) == 3  # 4 + 4 + 2


@pytest.mark.parametrize("mode", ["stall", "silent"])
def test_stall_and_silent_send_nothing_more(mode: str) -> None:
    with DripServer(size=10, mode=mode) as server:  # type: ignore[arg-type]
        with _ask(server) as sock:
            if mode == "stall":
                assert b"Content-Length: 10\r\n" in _head(sock)
            sock.settimeout(1.0)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        assert server.outcomes.wait_for(1, timeout=2)
    (out,) = server.outcomes
    assert out["client_closed"] and out["sent"] == 0 and out["elapsed"] >= 0.95


def test_drip_close_is_prompt() -> None:
    server = DripServer(size=10, interval=5.0)
    with _ask(server) as sock:
        _head(sock)
        assert server.conns.wait_total(1)
        t0 = time.monotonic()
        server.close()
        assert time.monotonic() - t0 < 2
        assert sock.recv(10) == b""
    assert not server.outcomes[0]["client_closed"]  # the server ended it


# --------------------------------------------------------------- backlog


def test_full_backlog_connect_hangs_instead_of_refused() -> None:
    with socket.create_server((HOST, 0)) as normal:  # control: the probe sees completions
        with socket.socket() as s:
            s.setblocking(False)
            s.connect_ex(normal.getsockname())
            assert select.select([], [s], [], 1.0)[1]
    before = listen_overflows()
    with FullBacklogListener() as listener:
        assert listener.fillers >= 1
        t0 = time.monotonic()
        assert listener.connect_hangs(1.0)
        assert time.monotonic() - t0 >= 0.95
        assert listen_overflows() > before  # the kernel dropped our SYN(s)
        # What a client with a connect timeout sees: a timeout, not a refusal.
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            socket.create_connection((HOST, listener.port), timeout=0.5)
        assert time.monotonic() - t0 >= 0.45
        port = listener.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=2)


def test_full_backlog_listeners_are_independent() -> None:
    with FullBacklogListener() as a, FullBacklogListener() as b:
        assert a.port != b.port
        assert a.connect_hangs(0.5) and b.connect_hangs(0.5)


# -------------------------------------------------------------- counting


def test_counting_server_concurrency(counting_http_server: CountingHTTPServer) -> None:
    server = counting_http_server
    statuses: list[int] = []

    def get() -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=5)
        try:
            conn.request("GET", "/delay/800")
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        finally:
            conn.close()

    threads = [threading.Thread(target=get) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert statuses == [200, 200, 200]
    assert server.conns.wait_open(0)
    conns = server.conns
    assert (conns.total, conns.max_open, conns.max_active, conns.active) == (3, 3, 3, 0)
    assert all(not r.is_open and r.requests == 1 and r.lifetime >= 0.75 for r in conns.records)


def test_counting_server_keepalive_and_ages(counting_http_server: CountingHTTPServer) -> None:
    server = counting_http_server
    first = http.client.HTTPConnection(HOST, server.port, timeout=5)
    for _ in range(3):
        first.request("GET", "/status/200")
        first.getresponse().read()
    time.sleep(0.3)
    second = http.client.HTTPConnection(HOST, server.port, timeout=5)
    second.request("GET", "/status/200")
    second.getresponse().read()
    a, b = server.conns.records
    assert (a.index, a.requests, b.index, b.requests) == (0, 3, 1, 1)
    assert b.accepted_at - a.accepted_at >= 0.25
    assert a.is_open and server.conns.open == 2 and server.conns.max_active == 1
    assert [r["peer_port"] for r in server.requests] == [a.peer_port] * 3 + [b.peer_port]
    first.close()
    assert server.conns.wait_open(1)
    assert not server.conns.records[0].is_open
    second.close()
    assert server.conns.wait_open(0)
    server.reset()
    assert server.conns.records == [] and server.conns.max_open == 0
